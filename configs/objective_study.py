"""The T5 objective study in miniature: 13 objectives and variants x 4 synthetic downstream tasks x 2 seeds,
plus the no-pretraining baseline, with the tiny T5 on the built-in corpus.

python scripts/objective_study.py --config=configs/objective_study.py --study_dir=/tmp/t5x_tl_objectives

Every pretraining is the same job (same model, steps, batch and inputs length, so the same number of input
tokens); every fine-tune is the same job on its task. About 3 hours on a 2-core CPU: fine-tuning for 50 steps
instead fits under 2, but then no model reads its input yet and pretraining does not show (README, "The
objective study"). At full scale see configs/objective_study_c4.py.
"""

from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.config import load_config_file
from t5x_tl.experiments.objective_tables import downstream


def _job(task_modules: tuple[str, ...], *, steps: int, eval_batches: int, log_every: int) -> ConfigDict:
    """The main job's config as one study run: AdamW, evaluated and saved once, at the end."""
    cfg = load_config_file(Path(__file__).with_name("pretrain_span_corruption.py"))
    cfg.data.task_modules = task_modules
    cfg.train.steps = cfg.train.eval_every = cfg.checkpoint.every = steps
    cfg.train.eval_batches = eval_batches
    cfg.train.log_every = log_every
    cfg.checkpoint.keep = 1
    cfg.optimizer.name = "adamw"
    return cfg


def get_config():
    study = ConfigDict()
    study.corpus = "builtin"  # pretraining tasks are <corpus>_<objective> (t5x_tl.data.tasks.pretraining)
    study.objectives = (
        # the seven objectives of the paper's Tables 3 and 4
        "prefix_lm",
        "bert_style_d15",
        "deshuffling",
        "mass_style_d15",
        "iid_replace_spans_d15",
        "iid_drop_tokens_d15",
        "random_spans_d15_s3",
        # corruption rates (Table 5) and span lengths (Table 6)
        "iid_replace_spans_d10",
        "iid_replace_spans_d25",
        "iid_replace_spans_d50",
        "random_spans_d15_s2",
        "random_spans_d15_s5",
        "random_spans_d15_s10",
    )
    # columns, in name order: the GLUE, SQuAD, CNN/DM and WMT analogues built from the corpus's world
    study.tasks = ConfigDict(
        dict(
            synthetic_pairs=downstream("pairs (GLUE)", 128, 8, ("accuracy", "macro_f1")),
            synthetic_qa=downstream("qa (SQuAD)", 256, 16, ("em",)),
            synthetic_summaries=downstream("summaries (CNN/DM)", 256, 64, ("rouge2",)),
            synthetic_translation=downstream("translation (WMT)", 72, 72, ("bleu",)),
        )
    )
    study.seeds = (0, 1)
    study.workers = 1  # processes running jobs side by side
    study.eval_split = "validation"
    study.eval_examples = 200  # 0: the whole split
    study.eval_batch_size = 50

    study.pretrain = _job(("t5x_tl.data.tasks.pretraining",), steps=200, eval_batches=4, log_every=50)
    study.pretrain.optimizer.learning_rate = 2e-3
    study.pretrain.optimizer.schedule = "warmup_cosine"
    study.pretrain.optimizer.warmup_steps = 30
    study.finetune = _job(("t5x_tl.data.downstream.registry",), steps=200, eval_batches=2, log_every=25)
    study.finetune.data.batch_size = 16
    study.finetune.optimizer.learning_rate = 1e-3
    study.finetune.optimizer.schedule = "constant"
    study.lock()
    return study
