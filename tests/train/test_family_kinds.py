"""BERT, RoBERTa, DeBERTa-v3 and GPT-2 as model kinds: each trains through the ordinary loop, records its kind
and config in its checkpoints, exports to Hugging Face and imports back, and counts its FLOPs as XLA does."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from t5x_tl.config import base_config
from t5x_tl.errors import UserError
from t5x_tl.models.kinds import ModelSettings
from t5x_tl.models.registry import model_kind

# kind -> (task, inputs_length, targets_length): the layout's features from the shared user task module
RUNS = {
    "bert": ("user_bytes_bert_style_d15", 32, 32),
    "roberta": ("user_bytes_bert_style_d15", 32, 32),
    "deberta_v3": ("user_bytes_bert_style_d15", 32, 32),
    "gpt2": ("user_bytes_causal_lm", 32, 32),
}


@pytest.mark.parametrize("kind", ["bert", "gpt2"])  # one per layout; the loop is the same for every kind
def test_a_family_kind_trains_records_and_converts(kind, tmp_path, user_tasks):
    from t5x_tl.train.checkpoint_record import recorded_model
    from t5x_tl.train.checkpointing import read_params
    from t5x_tl.train.loop import train

    task, inputs_length, targets_length = RUNS[kind]
    cfg = base_config()
    cfg.model.kind = kind
    cfg.data.update(task=task, task_modules=(user_tasks,), inputs_length=inputs_length, targets_length=targets_length)
    cfg.data.batch_size = 4
    cfg.train.update(dict(steps=2, eval_every=2, eval_batches=1, log_every=1))
    result = train(cfg, tmp_path / "run")
    assert result.step == 2 and result.stopped_by is None and 0.0 <= result.last_eval["accuracy"] <= 1.0
    step, params, metadata = read_params(tmp_path / "run" / "checkpoints", None)
    model = recorded_model(metadata, tmp_path / "run" / "checkpoints" / str(step))
    assert model.kind is model_kind(kind) and metadata["model"]["kind"] == kind
    model.kind.save_hf(tmp_path / "hf", model.config, params)
    config_back, params_back = model.kind.load_hf(tmp_path / "hf")
    assert model.kind.shape_signature(config_back) == model.kind.shape_signature(model.config)
    jax.tree.map(np.testing.assert_array_equal, params_back, jax.device_get(params))


@pytest.mark.parametrize("kind", ["roberta", "deberta_v3"])
def test_the_other_encoder_kinds_record_feed_and_convert(kind, tmp_path):
    """What a loop run exercises beyond the shared encoder-only path: the recorded config, a converted batch, the
    Hugging Face twin."""
    family = model_kind(kind)
    cfg = family.make_config("tiny", 256, ModelSettings())
    assert family.config_from_record(dataclasses.asdict(cfg)) == cfg
    model = family.build(cfg, nnx.Rngs(0))
    tokens = np.random.default_rng(0).integers(3, 256, (2, 16)).astype(np.int32)
    batch = {"encoder_input_tokens": tokens, "encoder_target_tokens": tokens, "encoder_loss_weights": tokens > 0}
    logits, targets, weights, _ = family.predict(model, batch, None)
    assert logits.shape == (2, 16, 256) and targets is tokens and weights is batch["encoder_loss_weights"]
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    family.save_hf(tmp_path / "hf", cfg, params)
    config_back, params_back = family.load_hf(tmp_path / "hf")
    assert family.shape_signature(config_back) == family.shape_signature(cfg)
    jax.tree.map(np.testing.assert_array_equal, params_back, jax.device_get(params))


@pytest.mark.parametrize("kind", list(RUNS))
def test_analytic_flops_account_for_what_xla_counts(kind):
    family = model_kind(kind)
    cfg = family.make_config("tiny", 512, ModelSettings(scan_layers=False))
    _, inputs_length, targets_length = RUNS[kind]
    model = family.build(cfg, nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    tokens = jnp.ones((2, family.features.sequence_length(inputs_length, targets_length)), jnp.int32)
    forward = lambda state: nnx.merge(graphdef, state)(tokens, deterministic=True)
    xla = jax.jit(forward).lower(state).compile().cost_analysis()["flops"]
    ours = 2 * family.forward_flops(cfg, inputs_length, targets_length) + family.batch_flops(cfg)
    # XLA also counts norms, softmax and activations: at this tiny width (GELU's erf, two LayerNorms a layer) ~8%
    assert 0.9 * xla <= ours <= xla, (ours, xla)


def test_family_settings_they_lack_and_sizes_they_lack_are_clear_errors():
    from t5x_tl.config import model_config, validate

    cfg = base_config()
    cfg.model.update(kind="gpt2", attention_impl="cudnn")
    with pytest.raises(UserError, match="attention_impl='cudnn' applies to T5 kinds; gpt2 uses einsums"):
        model_config(cfg, 100)
    cfg.model.update(attention_impl="auto", size="xxl")
    with pytest.raises(UserError, match=r"model\.size"):
        validate(cfg)
    with pytest.raises(UserError, match="Hugging Face has no twin of a prefix_lm model"):
        model_kind("prefix_lm").load_hf(None)
