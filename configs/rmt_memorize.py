"""A Recurrent Memory Transformer learns to carry a fact across segments (t5x_tl.data.memory.tasks).

python scripts/train.py --config=configs/rmt_memorize.py --workdir=/tmp/t5x_tl_rmt

The tiny T5 reads 4 segments of 32 tokens with 10 memory vectors; the fact is at the start of the first
segment and the question at the end of the last, so only the memory can bring the answer to the decoder.
scripts/rmt_study.py trains this job beside its controls and writes the table.
"""

from t5x_tl.config import base_config


def get_config():
    cfg = base_config()
    cfg.model.kind = "encoder_decoder"
    cfg.model.size = "tiny"
    cfg.model.rmt.segment_size = 32
    cfg.model.rmt.memory_size = 10
    cfg.model.rmt.max_segments = 4
    cfg.data.task = "rmt_memorize_n4_s32_c4"
    cfg.data.task_modules = ("t5x_tl.data.memory.tasks",)
    cfg.data.inputs_length = 128
    cfg.data.targets_length = 2
    cfg.data.batch_size = 32
    cfg.data.pack = False
    cfg.optimizer.name = "adamw"
    cfg.optimizer.learning_rate = 1e-3
    cfg.optimizer.schedule = "warmup_cosine"
    cfg.optimizer.warmup_steps = 100
    cfg.train.steps = 1000
    cfg.train.log_every = 50
    cfg.train.eval_every = 200
    cfg.train.eval_batches = 8
    cfg.checkpoint.every = 500
    cfg.lock()
    return cfg
