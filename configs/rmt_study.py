"""The Recurrent Memory Transformer study: fact memorisation and long-document classification, the model with
and without memory, the full-attention oracle, truncated backpropagation and no writing, and the causal controls
at evaluation.

python scripts/rmt_study.py --config=configs/rmt_study.py --study_dir=/tmp/t5x_tl_rmt

Every run trains configs/rmt_memorize.py on the task (4 segments of 32 tokens, 10 memory vectors) for
`train.train.steps` steps, then answers `eval_examples` held-out questions on 4 and on 8 segments.
"""

from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.config import load_config_file


def get_config():
    study = ConfigDict()
    study.seeds = (0, 1)
    study.tasks = ("memorize", "long_document")
    study.variants = ("rmt", "no_memory", "full_attention", "bptt_1", "no_write")
    study.choices = 4
    study.eval_examples = 500
    study.eval_batch_size = 100
    study.train = load_config_file(Path(__file__).with_name("rmt_memorize.py"))
    study.train.unlock()
    study.train.train.steps = 300
    study.train.train.eval_every = 150
    study.train.checkpoint.every = 300
    study.train.lock()
    study.lock()
    return study
