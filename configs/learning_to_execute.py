"""Learning to Execute (Zaremba & Sutskever, 2015): a tiny T5 reads a program character by character and
writes what it prints, trained with the combined curriculum towards programs of length 4, nesting 2.

python scripts/train.py --config=configs/learning_to_execute.py --workdir=/tmp/t5x_tl_lte \
  --config.curriculum.strategy=naive   # or baseline, mixed, combined

The lengths hold every validation program at the target level (at most 79 characters and an 8-character
output, plus EOS); a longer training program would be trimmed, so raise them with the target.
"""

from t5x_tl.config import base_config


def get_config():
    cfg = base_config()
    cfg.model.size = "tiny"
    cfg.data.task_modules = ("t5x_tl.data.curriculum.execute.tasks",)
    cfg.data.inputs_length = 96
    cfg.data.targets_length = 12
    cfg.data.batch_size = 32
    cfg.data.pack = False
    cfg.curriculum.strategy = "combined"
    cfg.curriculum.task = "lte_program_l{length}_n{nesting}"
    cfg.curriculum.length = 4
    cfg.curriculum.nesting = 2
    cfg.curriculum.patience = 2
    cfg.curriculum.advance_at = 0.95
    cfg.optimizer.name = "adamw"
    cfg.optimizer.learning_rate = 1e-3
    cfg.optimizer.schedule = "warmup_cosine"
    cfg.optimizer.warmup_steps = 100
    cfg.train.steps = 2000
    cfg.train.log_every = 50
    cfg.train.eval_every = 100
    cfg.train.eval_batches = 4
    cfg.checkpoint.every = 500
    cfg.lock()
    return cfg
