"""The T5 objective study at the paper's scale on a pod: T5 v1.1 base pretrained on C4 with each objective for
2^19 steps of 128 x 512 tokens, fine-tuned on GLUE, CNN/DailyMail, SQuAD and WMT.

T5X_TL_SENTENCEPIECE_MODEL=gs://t5-data/vocabs/cc_all.32000/sentencepiece.model TFDS_DATA_DIR=gs://my-bucket/tfds \
python scripts/launch.py tpu --tpu=my-pod --zone=... --repo=~/t5x_tl --script=scripts/objective_study.py -- \
  --config=configs/objective_study_c4.py --study_dir=gs://my-bucket/objective_study

The same driver as the miniature (configs/objective_study.py); only the corpus, tasks, model and budgets differ.
C4 goes through T5's document concatenation, and the vocabulary has 256 sentinels instead of T5's 100, so that
i.i.d. replace spans at 25% and 50% run with inputs 512 (t5x_tl.data.tasks.c4_study says why).
"""

from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.config import load_config_file
from t5x_tl.experiments.objective_tables import downstream

TASK_MODULES = ("t5x_tl.data.tasks.c4_study",)


def get_config():
    study = load_config_file(Path(__file__).with_name("objective_study.py"))
    study.unlock()
    study.corpus = "c4"
    study.tasks = ConfigDict(
        dict(
            glue_qnli_v2=downstream("QNLI", 512, 8, ("accuracy",)),
            glue_sst2_v2=downstream("SST-2", 512, 8, ("accuracy",)),
            cnn_dailymail_v340=downstream("CNN/DM", 512, 128, ("rouge2",)),
            squad_v110=downstream("SQuAD", 512, 32, ("em",)),
            wmt14_ende=downstream("WMT En-De", 512, 128, ("bleu",)),
        )
    )
    study.seeds = (0,)
    study.eval_examples = 0
    study.eval_batch_size = 128
    for job in (study.pretrain, study.finetune):
        job.model.size = "base"
        job.model.dtype = "bfloat16"
        job.data.task_modules = TASK_MODULES
        job.data.batch_size = 128
        job.data.inputs_length = 512
        job.optimizer.name = "adafactor"
        job.optimizer.learning_rate = 1.0
        job.checkpoint.every = 5000
        job.checkpoint.keep = 2
        job.train.log_every = 100
        job.train.eval_batches = 32
        job.distributed.auto = True
    study.pretrain.train.steps = 2**19
    study.pretrain.train.eval_every = 10_000
    study.pretrain.optimizer.schedule = "rsqrt"
    study.pretrain.optimizer.warmup_steps = 10_000
    study.finetune.train.steps = 2**18
    study.finetune.train.eval_every = 5000
    study.finetune.optimizer.schedule = "constant"
    study.finetune.optimizer.learning_rate = 1e-3
    study.lock()
    return study
