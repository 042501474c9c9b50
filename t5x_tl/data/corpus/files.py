"""The built-in corpus on disk: TFRecord splits that SeqIO reads, plus the world as JSON for task generators.

Layout under the data folder: ``corpus/<spec fingerprint>/{spec.json, world.json, train.tfrecord,
validation.tfrecord}``. The fingerprint names the spec, so two specs never share a folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from t5x_tl.data.cache import atomic_directory
from t5x_tl.data.corpus.documents import CorpusSpec, Document, generate_corpus
from t5x_tl.data.corpus.world import World

SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class CorpusFiles:
    """Paths of one built corpus."""

    directory: Path

    @classmethod
    def locate(cls, spec: CorpusSpec, data_dir: Path) -> CorpusFiles:
        """Where the corpus for ``spec`` lives (or will live) under ``data_dir``."""
        return cls(data_dir / "corpus" / spec.fingerprint())

    def split_path(self, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"unknown corpus split {split!r}; choose one of {SPLITS}")
        return self.directory / f"{split}.tfrecord"

    def world(self) -> World:
        return World.from_json((self.directory / "world.json").read_text())

    def texts(self, split: str) -> list[str]:
        """Document texts of a split, read back from the TFRecord file (for vocabulary training)."""
        import tensorflow as tf

        texts = []
        for record in tf.data.TFRecordDataset(str(self.split_path(split))):
            example = tf.train.Example.FromString(record.numpy())
            texts.append(example.features.feature["text"].bytes_list.value[0].decode("utf-8"))
        return texts


def _write_split(path: Path, documents: list[Document]) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for doc in documents:
            feature = {
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[doc.id.encode()])),
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[doc.text.encode("utf-8")])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def ensure_corpus(spec: CorpusSpec, data_dir: Path) -> CorpusFiles:
    """Builds the corpus for ``spec`` under ``data_dir`` unless it is already there."""
    spec.validate()
    files = CorpusFiles.locate(spec, data_dir)
    if files.directory.is_dir():
        return files
    world, splits = generate_corpus(spec)
    with atomic_directory(files.directory) as scratch:
        (scratch / "world.json").write_text(world.to_json())
        for split in SPLITS:
            _write_split(scratch / f"{split}.tfrecord", splits[split])
        (scratch / "spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=2))
    return files
