"""The T5 objective study in miniature: 13 objectives and variants x 4 synthetic downstream tasks x 2 seeds,
plus the no-pretraining baseline, with the tiny T5 on the built-in corpus.

python scripts/objective_study.py --config=configs/objective_study.py --study_dir=/tmp/t5x_tl_objectives

Every pretraining is the same job (same model, steps, batch and inputs length, so the same number of input
tokens); every fine-tune is the same job on its task. At full scale see configs/objective_study_c4.py.
"""

from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.config import load_config_file


def downstream(label: str, inputs_length: int, targets_length: int, metrics: tuple[str, ...]) -> ConfigDict:
    """A downstream column: its SeqIO lengths and the metrics averaged into its score."""
    return ConfigDict(dict(label=label, inputs_length=inputs_length, targets_length=targets_length, metrics=metrics))


def get_config():
    study = ConfigDict()
    study.corpus = "builtin"  # pretraining tasks are <corpus>_<objective> (t5x_tl.data.pretraining_tasks)
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

    pretrain = load_config_file(Path(__file__).with_name("pretrain_span_corruption.py"))
    pretrain.data.task_modules = ("t5x_tl.data.pretraining_tasks",)
    pretrain.train.steps = 200
    pretrain.train.eval_every = 200
    pretrain.train.eval_batches = 4
    pretrain.train.log_every = 50
    pretrain.checkpoint.every = 200
    pretrain.checkpoint.keep = 1
    pretrain.optimizer.name = "adamw"
    pretrain.optimizer.learning_rate = 2e-3
    pretrain.optimizer.schedule = "warmup_cosine"
    pretrain.optimizer.warmup_steps = 30
    study.pretrain = pretrain

    finetune = load_config_file(Path(__file__).with_name("pretrain_span_corruption.py"))
    finetune.data.task_modules = ("t5x_tl.data.downstream.registry",)
    finetune.data.batch_size = 16
    finetune.train.steps = 50
    finetune.train.eval_every = 50
    finetune.train.eval_batches = 2
    finetune.train.log_every = 25
    finetune.checkpoint.every = 50
    finetune.checkpoint.keep = 1
    finetune.optimizer.name = "adamw"
    finetune.optimizer.learning_rate = 1e-3
    finetune.optimizer.schedule = "constant"
    study.finetune = finetune
    study.lock()
    return study
