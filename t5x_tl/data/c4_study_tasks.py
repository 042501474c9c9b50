"""Importing this registers the tasks of the full-scale objective study: every objective over C4
(``c4_<objective>``) and the TFDS downstream tasks (GLUE, SuperGLUE, CNN/DailyMail, SQuAD, WMT), all tokenized
with the SentencePiece model named by ``$T5X_TL_SENTENCEPIECE_MODEL`` (on pods T5's own,
``gs://t5-data/vocabs/cc_all.32000/sentencepiece.model``, with 100 sentinels). TFDS reads the prepared
datasets from ``$TFDS_DATA_DIR``.
"""

from __future__ import annotations

import os

import seqio

from t5x_tl.data import pretraining_tasks, tfds_tasks
from t5x_tl.errors import UserError

VOCABULARY_VARIABLE = "T5X_TL_SENTENCEPIECE_MODEL"


def vocabulary() -> seqio.SentencePieceVocabulary:
    path = os.environ.get(VOCABULARY_VARIABLE)
    if not path:
        raise UserError(
            f"set ${VOCABULARY_VARIABLE} to the SentencePiece model to tokenize C4 and the downstream tasks with, "
            "e.g. gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
        )
    return seqio.SentencePieceVocabulary(path, extra_ids=100)


VOCABULARY = vocabulary()
pretraining_tasks.register_c4_tasks(VOCABULARY)
tfds_tasks.register_tfds_tasks(VOCABULARY)
