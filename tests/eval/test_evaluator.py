"""Evaluation by decoding: batched predictions equal one-by-one decoding, metrics see postprocessed text."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import seqio
import tensorflow as tf
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.eval import metrics
from t5x_tl.eval.evaluator import evaluate
from t5x_tl.models import decoding
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder

VOCABULARY = seqio.ByteVocabulary()
TEXTS = [("copy abc", "abc"), ("copy de", "de"), ("copy fghij", "fghij"), ("copy k", "k"), ("copy lm", "lm")]


def _all_upper(targets, predictions) -> dict[str, float]:
    """100 when the postprocessor (upper-casing) reached every target and prediction."""
    return {"all_upper": 100.0 * all(x.isupper() or not x.isalpha() for x in [*targets, *predictions])}


def _register(name: str, metric_fns) -> str:
    if name not in seqio.TaskRegistry.names():
        source = seqio.FunctionDataSource(
            lambda split, shuffle_files, seed=None: tf.data.Dataset.from_tensor_slices(
                {"inputs": [i for i, _ in TEXTS], "targets": [t for _, t in TEXTS]}
            ),
            splits=("validation",),
        )
        features = {k: seqio.Feature(VOCABULARY, add_eos=True) for k in ("inputs", "targets")}
        seqio.TaskRegistry.add(
            name,
            source=source,
            preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
            output_features=features,
            postprocess_fn=lambda text, example=None, is_target=False: text.upper(),
            metric_fns=metric_fns,
        )
    return name


@pytest.fixture(scope="module")
def model() -> EncoderDecoder:
    cfg = t5_config("tiny", 384, d_model=32, d_ff=64, num_heads=2, d_kv=16)
    return EncoderDecoder(cfg, rngs=nnx.Rngs(0))


def _alone(model, text: str) -> str:
    tokens = np.asarray([*VOCABULARY.encode(text), decoding.EOS_ID], np.int32)[None]
    out = np.asarray(decoding.greedy_decode(model, jnp.asarray(tokens), 6))[0]
    ends = np.flatnonzero(out == decoding.EOS_ID)
    return VOCABULARY.decode(out[: ends[0] if ends.size else len(out)].tolist())


def test_batched_predictions_equal_one_by_one_and_metrics_see_postprocessed_values(model):
    name = _register("evaluator_copy", [metrics.accuracy, _all_upper])
    result = evaluate(model, name, inputs_length=16, max_decode_length=6, batch_size=2)
    assert [e["prediction"] for e in result.examples] == [_alone(model, i) for i, _ in TEXTS]
    assert [e["target"] for e in result.examples] == [t for _, t in TEXTS]
    expected = 100.0 * np.mean([_alone(model, i).upper() == t.upper() for i, t in TEXTS])
    assert result.metrics["accuracy"] == pytest.approx(expected)
    assert result.metrics["all_upper"] == 100.0
    assert len(evaluate(model, name, inputs_length=16, max_decode_length=6, num_examples=3).examples) == 3


def test_bad_evaluation_requests(model):
    with pytest.raises(UserError, match="'no_such_task' is not a registered SeqIO task"):
        evaluate(model, "no_such_task", inputs_length=8, max_decode_length=4)
    name = _register("evaluator_copy", [metrics.accuracy, _all_upper])
    with pytest.raises(UserError, match="has no split 'test'"):
        evaluate(model, name, inputs_length=8, max_decode_length=4, split="test")
    bare = _register("evaluator_no_metrics", [])
    with pytest.raises(UserError, match="has no prediction metrics"):
        evaluate(model, bare, inputs_length=8, max_decode_length=4)
