"""The main job: T5 span-corruption pretraining of a tiny T5 v1.1 on the built-in corpus (minutes on a CPU).

python scripts/train.py --config=configs/pretrain_span_corruption.py --workdir=/tmp/t5x_tl_pretrain
"""

from t5x_tl.config import base_config


def get_config():
    cfg = base_config()
    cfg.model.size = "tiny"
    cfg.data.inputs_length = 128
    cfg.data.batch_size = 32
    cfg.train.steps = 1000
    cfg.train.eval_every = 200
    cfg.optimizer.warmup_steps = 1000
    cfg.checkpoint.every = 200
    cfg.lock()
    return cfg
