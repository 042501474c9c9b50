"""A model kind is one object: a toy kind defined here, registered with one call, trains through the ordinary loop,
is recorded in its checkpoints and counted in FLOPs, and nothing else in the package had to change for it."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from t5x_tl.config import base_config, validate
from t5x_tl.data import features
from t5x_tl.errors import UserError
from t5x_tl.models.config import T5Config
from t5x_tl.models.kinds import Batch, ModelKind, ModelSettings, Prediction
from t5x_tl.models.registry import MODEL_KINDS, model_kind, register_kind
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.sizes import t5_config

TINY = t5_config("tiny", 128)


class BagOfInputs(nnx.Module):
    """Each target position sees its previous token and the mean of the inputs' embeddings."""

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(cfg.vocab_size, 16, rngs=rngs)
        self.out = nnx.Linear(16, cfg.vocab_size, rngs=rngs)

    def __call__(self, inputs: jax.Array, decoder_inputs: jax.Array) -> jax.Array:
        context = jnp.mean(self.embed(inputs), axis=1, keepdims=True)
        return self.out(self.embed(decoder_inputs) + context).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class BagOfInputsKind(ModelKind):
    def sizes(self) -> tuple[str, ...]:
        return ("tiny",)

    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> T5Config:
        return t5_config(size, vocab_size)  # only the vocabulary matters to this model

    def config_from_record(self, record: dict) -> T5Config:
        return T5Config(**record)

    def backbone(self, cfg: T5Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return BagOfInputs(cfg, rngs)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(batch["encoder_input_tokens"], batch["decoder_input_tokens"])
        return logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], batch.get("decoder_segment_ids")

    def _forward_flops(self, cfg: T5Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        return 2 * targets * 16 * cfg.vocab_size


TOY = BagOfInputsKind("bag_of_inputs", features.ENCODER_DECODER, memory_class=None, decodes=False)


@pytest.fixture
def toy_kind():
    register_kind(TOY)
    yield TOY
    del MODEL_KINDS[TOY.name]


def test_a_kind_defined_outside_the_package_trains_through_the_loop(toy_kind, tmp_path, user_tasks):
    from t5x_tl.train.checkpoint_record import recorded_model
    from t5x_tl.train.checkpointing import read_params
    from t5x_tl.train.loop import train

    cfg = base_config()
    cfg.model.kind = "bag_of_inputs"
    cfg.data.update(task="user_bytes_span_corruption", task_modules=(user_tasks,), inputs_length=32, targets_length=16)
    cfg.data.batch_size = 4
    cfg.train.update(dict(steps=3, eval_every=3, eval_batches=1, log_every=1))
    cfg.checkpoint.every = 3
    validate(cfg)
    result = train(cfg, tmp_path / "run")
    assert result.step == 3 and result.stopped_by is None and 0.0 <= result.last_eval["accuracy"] <= 1.0
    step, params, metadata = read_params(tmp_path / "run" / "checkpoints", None)
    assert step == 3 and metadata["model"]["kind"] == "bag_of_inputs"
    model = recorded_model(metadata, tmp_path / "run" / "checkpoints" / "3")
    assert model.kind is TOY and set(params) == {"embed", "out"}
    assert model.kind.forward_flops(model.config, 32, 16) == 2 * 16 * 16 * model.config.vocab_size


def test_a_checkpoint_of_an_unregistered_kind_is_a_clear_error(tmp_path):
    from t5x_tl.train.checkpoint_record import recorded_model

    metadata = {"model": {"kind": "bag_of_inputs"}, "model_config": dataclasses.asdict(TINY)}
    with pytest.raises(UserError, match=r"unknown model kind 'bag_of_inputs'.*register that kind"):
        recorded_model(metadata, tmp_path)


def test_unknown_names_taken_names_and_missing_memory_are_clear_errors(toy_kind):
    with pytest.raises(ValueError, match=r"unknown model kind 't5'; choose one of \('encoder_decoder', "):
        model_kind("t5")
    with pytest.raises(ValueError, match="already registered"):
        register_kind(dataclasses.replace(TOY, decodes=True))
    cfg = base_config()
    cfg.model.kind = "t5"
    with pytest.raises(UserError, match=r"model\.kind"):
        validate(cfg)
    with pytest.raises(ValueError, match="bag_of_inputs model has no recurrent memory"):
        TOY.build(TINY, nnx.Rngs(0), MemoryConfig(8, 2, 2))
