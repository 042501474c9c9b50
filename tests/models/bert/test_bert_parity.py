"""BERT and RoBERTa equal to transformers' PyTorch classes on the same random weights: final hidden states,
masked-LM logits and classification scores, over padded rows of mixed lengths up to the last position; packed
rows equal to their examples run apart; every execution setting and sharding gives the same numbers."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from bert_reference import (
    FAMILIES,
    HEADS,
    SHAPES,
    assert_close,
    our_outputs,
    ours_from,
    padded_inputs,
    random_reference,
    reference_outputs,
)
from flax import nnx

from t5x_tl.models.bert.config import BertConfig
from t5x_tl.models.bert.model import Bert, position_ids
from t5x_tl.models.sharding import activation_rules
from t5x_tl.train import partitioning


@pytest.fixture(scope="module")
def models():
    """(family, shape, head) -> (reference, ours), each built once for the module."""
    cache = {}

    def get(family: str, shape: str, head: str) -> tuple[torch.nn.Module, Bert]:
        if (family, shape, head) not in cache:
            reference = random_reference(family, shape, head)
            cache[family, shape, head] = reference, ours_from(reference, head)
        return cache[family, shape, head]

    return get


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hidden_states_and_head_outputs_equal_transformers(models, family, shape, head):
    reference, ours = models(family, shape, head)
    tokens, segments, types = padded_inputs(ours.config)
    expected_hidden, expected_out = reference_outputs(reference, tokens, segments, types)
    hidden, out = our_outputs(ours, jnp.asarray(tokens), jnp.asarray(segments), jnp.asarray(types))
    assert out.shape == expected_out.shape and out.dtype == jnp.float32
    rel_hidden, rel_out = assert_close(hidden, expected_hidden), assert_close(out, expected_out)
    print(f"\n{family}/{shape}/{head}: hidden {rel_hidden:.2e}, outputs {rel_out:.2e}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_without_segment_ids_the_pad_id_marks_padding(models, family):
    reference, ours = models(family, "3_heads_gelu", "masked_lm")
    tokens, segments, types = padded_inputs(ours.config, seed=1)
    _, expected = reference_outputs(reference, tokens, segments, types)
    _, logits = our_outputs(ours, jnp.asarray(tokens), None, jnp.asarray(types))
    print(f"\n{family} without segment ids: logits {assert_close(logits, expected):.2e}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_packed_examples_equal_each_example_run_alone(models, family):
    """Two examples in one row (segment ids 1 and 2, then padding) give transformers' outputs of each alone."""
    reference, ours = models(family, "4_heads_tanh_gelu", "masked_lm")
    cfg = ours.config
    rng = np.random.default_rng(2)
    lengths = (9, 5)
    packed = np.full((1, cfg.max_length), cfg.pad_token_id)
    packed_segments = np.zeros_like(packed)
    packed_types = np.zeros_like(packed)
    alone = []
    start = 0
    for segment, length in enumerate(lengths, 1):
        tokens = rng.integers(3, cfg.vocab_size, length)
        types = rng.integers(0, cfg.type_vocab_size, length)
        packed[0, start : start + length], packed_types[0, start : start + length] = tokens, types
        packed_segments[0, start : start + length] = segment
        alone.append((tokens[None], np.ones((1, length), np.int32), types[None], start))
        start += length
    _, logits = our_outputs(ours, jnp.asarray(packed), jnp.asarray(packed_segments), jnp.asarray(packed_types))
    for i, (tokens, segments, types, start) in enumerate(alone):
        _, expected = reference_outputs(reference, tokens, segments, types)
        relative = assert_close(logits[:, start : start + tokens.shape[1]], expected)
        print(f"\n{family} packed example {i}: logits {relative:.2e}")


def test_position_ids_restart_per_example_and_follow_each_family():
    segments = jnp.array([[1, 1, 1, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    bert = BertConfig(vocab_size=10, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8)
    roberta = dataclasses.replace(bert, model_type="roberta", pad_token_id=1)
    np.testing.assert_array_equal(position_ids(segments, bert), [[0, 1, 2, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(position_ids(segments, roberta), [[2, 3, 4, 2, 3, 1, 1], [2, 3, 4, 5, 6, 7, 8]])


def test_loop_and_remat_settings_give_the_scans_logits(models):
    reference, ours = models("bert", "3_heads_gelu", "masked_lm")
    tokens, segments, types = (jnp.asarray(x) for x in padded_inputs(ours.config))
    _, expected = our_outputs(ours, tokens, segments, types)
    for overrides in (dict(scan_layers=False, remat_policy="full"), dict(remat_policy="dots")):
        _, logits = our_outputs(ours_from(reference, "masked_lm", **overrides), tokens, segments, types)
        np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bfloat16_compute_stays_near_float32(models, family):
    reference, ours = models(family, "3_heads_gelu", "masked_lm")
    tokens, segments, types = (jnp.asarray(x) for x in padded_inputs(ours.config))
    _, expected = our_outputs(ours, tokens, segments, types)
    low_model = ours_from(reference, "masked_lm", dtype="bfloat16")
    hidden, low = our_outputs(low_model, tokens, segments, types)
    assert hidden.dtype == jnp.bfloat16 and low.dtype == jnp.float32
    error = float(jnp.abs(low - expected).max() / jnp.abs(expected).max())
    assert 0 < error < 0.05, error


def test_dropout_draws_from_the_key_and_is_off_when_deterministic(models):
    _, ours = models("bert", "3_heads_gelu", "sequence_classification")
    tokens, segments, types = (jnp.asarray(x) for x in padded_inputs(ours.config))
    _, expected = our_outputs(ours, tokens, segments, types)
    classify = nnx.jit(lambda model, key: model.classify(tokens, segments, deterministic=False, rngs=nnx.Rngs(key)))
    scores = [classify(ours, jax.random.key(seed)) for seed in (0, 0, 1)]
    np.testing.assert_array_equal(np.asarray(scores[0]), np.asarray(scores[1]))
    assert not np.allclose(np.asarray(scores[0]), np.asarray(scores[2]))
    assert not np.allclose(np.asarray(scores[0]), np.asarray(expected))


def test_sharded_parameters_and_activations_give_the_same_logits(models):
    """fsdp x tensor parallelism over 4 devices: heads, MLP and vocabulary split, logits unchanged."""
    _, ours = models("bert", "4_heads_tanh_gelu", "masked_lm")
    tokens, segments, types = (jnp.asarray(x) for x in padded_inputs(ours.config))
    _, expected = our_outputs(ours, tokens, segments, types)
    mesh = partitioning.make_mesh(1, 2, fsdp=2)
    rules = partitioning.resolve_rules("fsdp_tensor_parallel")
    graphdef, state = nnx.split(ours)
    specs = partitioning.param_specs(state, rules)
    assert specs["layers"]["stacked"]["attention"]["query"] == jax.sharding.PartitionSpec(None, "fsdp", "model", None)
    assert specs["embeddings"]["word"] == jax.sharding.PartitionSpec("model", "fsdp")
    sharded = jax.device_put(nnx.to_pure_dict(state), partitioning.named(mesh, specs))

    @jax.jit
    def forward(params: dict) -> jax.Array:
        with activation_rules(rules):
            model = nnx.merge(graphdef, params)
            return model(tokens, segments, token_type_ids=types)

    with jax.set_mesh(mesh):
        logits = forward(sharded)
    assert logits.sharding.shard_shape(logits.shape)[-1] == ours.config.vocab_size // 2  # vocabulary over model
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_misuse_of_a_model_is_one_clear_error(models):
    _, classifier = models("bert", "3_heads_gelu", "sequence_classification")
    _, masked_lm = models("roberta", "3_heads_gelu", "masked_lm")
    tokens = jnp.full((1, 4), 5)
    with pytest.raises(ValueError, match="has the sequence_classification head: call classify"):
        classifier(tokens)
    with pytest.raises(ValueError, match="has the masked_lm head"):
        masked_lm.classify(tokens)
    with pytest.raises(ValueError, match="25 tokens exceed the 24 positions"):
        masked_lm(jnp.full((1, 25), 5))
    with pytest.raises(ValueError, match="unknown head 'qa'"):
        Bert(classifier.config, head="qa", rngs=nnx.Rngs(0))
