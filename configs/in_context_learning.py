"""In-context learning from scratch: a tiny decoder-only model trained on sequences that each carry a fresh
letter -> label mapping (t5x_tl.data.downstream.icl_mappings), so that only the sequence itself can tell a label.

python scripts/train.py --config=configs/in_context_learning.py --workdir=/tmp/t5x_tl_icl

Each sequence holds 16 pairs (47 bytes); the mixture draws 4-letter 2-label mappings, 6-letter 3-label
mappings and repeated random strings (where induction heads form) equally. scripts/icl_study.py trains this
job and measures few-shot accuracy on held-out mappings.
"""

from t5x_tl.config import base_config


def get_config():
    cfg = base_config()
    cfg.model.kind = "decoder_only"
    cfg.model.size = "tiny"
    cfg.data.task = "icl_mappings"
    cfg.data.task_modules = ("t5x_tl.data.downstream.icl_mappings",)
    cfg.data.targets_length = 64
    cfg.data.batch_size = 32
    cfg.data.pack = False
    cfg.optimizer.name = "adamw"
    cfg.optimizer.learning_rate = 2e-3
    cfg.optimizer.schedule = "warmup_cosine"
    cfg.optimizer.warmup_steps = 100
    cfg.train.steps = 2000
    cfg.train.log_every = 50
    cfg.train.eval_every = 250
    cfg.train.eval_batches = 4
    cfg.checkpoint.every = 500
    cfg.lock()
    return cfg
