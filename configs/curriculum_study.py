"""The Learning-to-Execute curriculum study in miniature: 4 strategies x 2 targets x 3 seeds of the tiny T5.

python scripts/curriculum_study.py --config=configs/curriculum_study.py --study_dir=/tmp/t5x_tl_curriculum

Each run is the job of configs/learning_to_execute.py at the run's target, strategy and seed (feature lengths
are derived from the target). At full scale, raise train.steps, the targets and the model size.
"""

from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.config import load_config_file


def get_config():
    study = ConfigDict()
    study.family = "program"  # or addition, copy (nesting 1)
    study.targets = ((2, 1), (2, 2))  # (length, nesting)
    study.strategies = ("baseline", "naive", "mixed", "combined")
    study.seeds = (0, 1, 2)
    study.train = load_config_file(Path(__file__).with_name("learning_to_execute.py"))
    study.train.train.steps = 600
    study.train.train.eval_every = 50
    study.train.checkpoint.every = 300
    study.lock()
    return study
