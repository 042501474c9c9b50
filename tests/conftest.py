"""Shared fixtures. Four CPU devices (set before JAX starts) let tests build real data x model meshes."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The tests compile the same tiny programs again and again, here and in the train, study and benchmark commands
# they start as subprocesses: all share XLA's persistent cache for the session (set before JAX starts).
_XLA_CACHE = tempfile.mkdtemp(prefix="t5x_tl_test_xla_cache_")
atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _XLA_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)

import pytest  # noqa: E402

from t5x_tl.data.corpus.documents import CorpusSpec  # noqa: E402
from t5x_tl.data.tasks.builtin import BuiltinData  # noqa: E402

SMALL_CORPUS = CorpusSpec(seed=0, num_entities=60, num_train_documents=40, num_validation_documents=8)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> os.PathLike:
    """One cache folder per test session, so generated assets never touch the checkout's data/."""
    path = tmp_path_factory.mktemp("t5x_tl_data")
    os.environ["T5X_TL_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def small_data(data_dir) -> BuiltinData:
    """A small built-in corpus with a 256-piece SentencePiece vocabulary."""
    return BuiltinData(corpus=SMALL_CORPUS, data_dir=data_dir, sentencepiece_size=256)


def pytest_configure(config) -> None:
    # Deprecations raised inside third-party libraries are theirs to fix; ours still show.
    for module in ("tensorflow", "tensorflow_datasets", "seqio", "orbax", "flax", "optax", "jax", "google", "absl"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{module}.*")


_USER_TASK_MODULE = """
import seqio, tensorflow as tf
from t5x_tl.data.tasks.builtin import register_span_corruption
from t5x_tl.data.tasks.pretraining import register_causal_lm_task, register_objective_tasks

TEXTS = [f"document {i}: " + " ".join(f"word{j % 17}" for j in range(i, i + 300)) for i in range(40)]
source = seqio.FunctionDataSource(
    lambda split, shuffle_files, seed=None: tf.data.Dataset.from_tensor_slices({"text": TEXTS}),
    splits=("train", "validation"),
)
register_span_corruption("user_bytes_span_corruption", source, seqio.ByteVocabulary(extra_ids=100))
register_objective_tasks("user_bytes", source, seqio.ByteVocabulary(extra_ids=100))  # user_bytes_bert_style_d15, ...
register_causal_lm_task("user_bytes", source, seqio.ByteVocabulary(extra_ids=100))  # user_bytes_causal_lm
"""


@pytest.fixture
def user_tasks(tmp_path, monkeypatch) -> str:
    """The name of an importable user module registering ``user_bytes_span_corruption`` and every objective task
    (``user_bytes_bert_style_d15``, ...) and ``user_bytes_causal_lm`` over 40 documents in bytes."""
    (tmp_path / "user_tasks.py").write_text(_USER_TASK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_tasks"
