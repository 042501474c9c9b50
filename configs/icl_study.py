"""The in-context-learning study: accuracy against K demonstrations on held-out letter -> label mappings.

python scripts/icl_study.py --config=configs/icl_study.py --study_dir=/tmp/t5x_tl_icl

Each seed trains configs/in_context_learning.py, then ranks the labels of `eval_episodes` held-out queries per
task after K demonstrations drawn from a pool of `pool_size` pairs of the query's own mapping, with true and
with shuffled labels.
"""

from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.config import load_config_file


def get_config():
    study = ConfigDict()
    study.seeds = (0, 1)
    study.shots = (0, 1, 2, 4, 8, 16)
    study.pool_size = 16
    study.eval_episodes = 500
    study.split = "validation"
    study.batch_size = 64
    study.train = load_config_file(Path(__file__).with_name("in_context_learning.py"))
    study.lock()
    return study
