"""Importing this registers the tasks of the full-scale objective study: every objective over C4
(``c4_<objective>``) and the TFDS downstream tasks (GLUE, SuperGLUE, CNN/DailyMail, SQuAD, WMT), all tokenized
with the SentencePiece model named by ``$T5X_TL_SENTENCEPIECE_MODEL`` (on pods T5's own,
``gs://t5-data/vocabs/cc_all.32000/sentencepiece.model``). TFDS reads the prepared datasets from ``$TFDS_DATA_DIR``.

The study's one departure from T5's setup: the vocabulary has 256 sentinels, not 100. With inputs of 512
tokens an example of i.i.d. replace spans may need 128 sentinels at 25% corruption and 256 at 50% (random spans
at 50%, 128 to 170); T5's code then counted down into ordinary pieces, reusing them as sentinels. 256 extra ids
keep every sentinel distinct, for 32,256-entry embeddings instead of T5 v1.1's 32,128 (0.08% more parameters
for base), in every run.
"""

from __future__ import annotations

import os

import seqio

from t5x_tl.data.objectives.preprocessors import objective_sentinels, objective_variants
from t5x_tl.data.tasks import pretraining as pretraining_tasks
from t5x_tl.data.tasks import tfds as tfds_tasks
from t5x_tl.errors import UserError

VOCABULARY_VARIABLE = "T5X_TL_SENTENCEPIECE_MODEL"
STUDY_INPUTS_LENGTH = 512
# the most sentinels any registered objective variant may need at the study's inputs length (256: i.i.d. at 50%)
EXTRA_IDS = max(objective_sentinels(name, params, STUDY_INPUTS_LENGTH) for name, params in objective_variants())


def vocabulary() -> seqio.SentencePieceVocabulary:
    path = os.environ.get(VOCABULARY_VARIABLE)
    if not path:
        raise UserError(
            f"set ${VOCABULARY_VARIABLE} to the SentencePiece model to tokenize C4 and the downstream tasks with, "
            "e.g. gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"
        )
    return seqio.SentencePieceVocabulary(path, extra_ids=EXTRA_IDS)


VOCABULARY = vocabulary()
pretraining_tasks.register_c4_tasks(VOCABULARY)
tfds_tasks.register_tfds_tasks(VOCABULARY)
