"""Users' own long documents as a SeqIO classification task: a folder of ``<split>.jsonl`` files, one JSON
object per line with the document's text and its label (both strings), for a Recurrent Memory Transformer to
read segment by segment.

Each file is read and checked whole before anything trains: a missing file, a line that is not JSON, a missing
or non-string field, or an empty text is one error naming the file and the line.
"""

from __future__ import annotations

import json
from pathlib import Path

import seqio
import tensorflow as tf

from t5x_tl.data.generated_source import SPLITS
from t5x_tl.errors import UserError
from t5x_tl.eval import metrics


def read_documents(path: Path, text_key: str = "text", label_key: str = "label") -> list[dict[str, str]]:
    """Every line of a JSONL file as ``{"inputs": text, "targets": label}``; UserError on anything malformed."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: give a folder with {', '.join(f'{s}.jsonl' for s in SPLITS)}")
    documents = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number} is not JSON ({error.msg}); write one object per line") from error
            for key in (text_key, label_key):
                if not isinstance(record, dict) or not isinstance(record.get(key), str):
                    raise UserError(f"{path}:{number} needs a string field {key!r}")
            if not record[text_key].strip():
                raise UserError(f"{path}:{number} has an empty {text_key!r}: drop the line or give the document")
            documents.append({"inputs": record[text_key], "targets": record[label_key]})
    if not documents:
        raise UserError(f"{path} holds no documents")
    return documents


class JsonlDocuments(seqio.DataSource):
    """``<directory>/<split>.jsonl`` as a SeqIO source of ``inputs`` (the text) and ``targets`` (the label)."""

    def __init__(self, directory: str | Path, text_key: str = "text", label_key: str = "label"):
        self._directory, self._keys = Path(directory).expanduser(), (text_key, label_key)
        super().__init__(splits=SPLITS, caching_permitted=False)

    @property
    def supports_arbitrary_sharding(self) -> bool:
        return False

    def list_shards(self, split: str) -> list[str]:
        return [str(self._directory / f"{split}.jsonl")]

    def get_dataset(
        self,
        split: str = "train",
        shuffle: bool = True,
        seed: int | None = None,
        shard_info: seqio.ShardInfo | None = None,
        *,
        sequence_length=None,
        use_cached: bool = False,
        num_epochs: int | None = 1,
    ) -> tf.data.Dataset:
        documents = read_documents(self._directory / f"{split}.jsonl", *self._keys)
        index, count = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)
        columns = {key: [d[key] for d in documents[index::count]] for key in ("inputs", "targets")}
        dataset = tf.data.Dataset.from_tensor_slices(columns)
        if shuffle:
            dataset = dataset.shuffle(len(columns["inputs"]), seed=seed)
        return dataset.repeat(num_epochs)


def register_jsonl_documents(
    name: str, directory: str | Path, vocabulary: seqio.Vocabulary, text_key: str = "text", label_key: str = "label"
) -> str:
    """Registers (once) a classification task over a folder of JSONL documents, scored by accuracy. Inputs
    longer than the job's ``inputs_length`` are truncated at the end (SeqIO's trimming), so size
    ``max_segments`` for the documents."""
    if name not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add(
            name,
            source=JsonlDocuments(directory, text_key, label_key),
            preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
            output_features={key: seqio.Feature(vocabulary, add_eos=True) for key in ("inputs", "targets")},
            metric_fns=[metrics.accuracy],
        )
    return name
