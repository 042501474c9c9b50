"""An RMT job through the ordinary loop: it trains, its checkpoint records the memory so the model is rebuilt as
trained, it resumes, and its config is checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from t5x_tl.config import load_config_file, validate
from t5x_tl.errors import UserError
from t5x_tl.eval.checkpoint_eval import evaluate_checkpoint
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.models.rmt import RecurrentDecoder, RecurrentMemory
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.loop import train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "rmt_memorize.py"


def _job(**rmt):
    cfg = load_config_file(CONFIG)
    cfg.data.batch_size = 4
    cfg.train.update(dict(steps=2, eval_every=2, eval_batches=1, log_every=1))
    cfg.checkpoint.every = 2
    cfg.model.rmt.update(rmt)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("rmt_job")
    result = train(_job(), workdir)
    assert result.step == 2 and result.stopped_by is None
    return workdir


def test_the_checkpoint_records_the_memory_and_rebuilds_the_model(trained):
    _, _, metadata = read_params(trained / "checkpoints", None)
    assert metadata["model"]["rmt_memory_size"] == 10
    assert metadata["memory_config"]["segment_size"] == 32 and metadata["memory_config"]["max_segments"] == 4
    _, model = load_model(trained)
    assert isinstance(model, RecurrentMemory) and model.memory[...].shape == (10, 128)


def test_a_longer_run_resumes_and_evaluates(trained):
    cfg = _job()
    cfg.train.steps = 3
    assert train(cfg, trained).step == 3
    scores = evaluate_checkpoint(cfg, trained, split="validation")
    assert 0.0 <= scores["sequence_accuracy"] <= 1.0


def test_a_checkpoint_with_another_memory_size_is_refused(trained):
    with pytest.raises(UserError, match="checkpoint of another model shape"):
        train(_job(memory_size=4), trained)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(pack=True), "config.data.pack=True is invalid"),
        (dict(inputs_length=160), r"160 input positions need 5 segments .* config.data.inputs_length"),
        (dict(rmt=dict(segment_size=600)), "beyond max_length=512"),
        (dict(rmt=dict(align="middle")), "config.model.rmt.align='middle' is invalid"),
        (dict(rmt=dict(bptt_depth=-1)), "config.model.rmt.bptt_depth=-1 is invalid"),
    ],
)
def test_bad_memory_settings_are_one_clear_error(change, message):
    cfg = _job(**change.pop("rmt", {}))
    for key, value in change.items():
        cfg.data[key] = value
    with pytest.raises(UserError, match=message):
        validate(cfg)


def test_a_plain_checkpoint_warm_starts_the_backbone_and_only_the_memory_is_new(tmp_path, caplog):
    plain = _job(segment_size=0)
    assert train(plain, tmp_path / "plain").step == 2
    cfg = _job()
    cfg.checkpoint.init_from = str(tmp_path / "plain")
    cfg.checkpoint.init_mapping = ((r"backbone/(.*)", r"\1"),)
    with caplog.at_level("INFO", logger="t5x_tl"):
        assert train(cfg, tmp_path / "rmt").step == 2
    report = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Warm start"))
    assert "1 initialised fresh, 0 pretrained tensors ignored" in report
    assert "fresh   memory (no pretrained memory)" in report


def test_a_decoder_only_rmt_trains_a_language_model_over_segments(tmp_path):
    cfg = load_config_file(CONFIG.with_name("in_context_learning.py"))
    cfg.data.batch_size = 4
    cfg.train.update(dict(steps=2, eval_every=2, eval_batches=1, log_every=1))
    cfg.checkpoint.every = 2
    cfg.model.rmt.update(dict(segment_size=16, memory_size=4, max_segments=4))
    result = train(cfg, tmp_path / "lm")
    assert result.step == 2 and 0.0 <= result.last_eval["accuracy"] <= 1.0
    _, model = load_model(tmp_path / "lm")
    assert isinstance(model, RecurrentDecoder)
