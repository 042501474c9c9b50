"""DeBERTa-v2/v3 Hugging Face directories both ways: what transformers saves imports with its outputs, what we save
loads in transformers (nothing missing, nothing unexpected) with ours, parameters and config round-trip exactly,
and every malformed input is one UserError, with nothing written."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers
from deberta_reference import (
    HEADS,
    assert_close,
    build,
    hf_config,
    our_outputs,
    padded_inputs,
    random_reference,
    reference_outputs,
)
from flax import nnx, traverse_util

from t5x_tl.errors import UserError
from t5x_tl.models.deberta.config import DebertaV2Config
from t5x_tl.models.deberta.hf import load_hf_directory, params_from_hf, params_to_hf, save_hf_directory
from t5x_tl.models.deberta.model import DebertaV2

CASES = [("v3_like", "masked_lm"), ("v2_like", "sequence_classification"), ("c2p_only_embedding_size", "masked_lm")]


@pytest.fixture(scope="module")
def saved_by_transformers(tmp_path_factory) -> dict:
    """For each case, a directory transformers saved (safetensors) and its model."""
    out = {}
    for shape, head in CASES:
        directory = tmp_path_factory.mktemp(f"{shape}_{head}")
        reference = random_reference(shape, head, seed=1)
        reference.save_pretrained(directory)
        out[shape, head] = directory, reference
    return out


def _compare(model: DebertaV2, reference: torch.nn.Module, shape: str) -> None:
    inputs = padded_inputs(shape)
    _, logits = our_outputs(model, *inputs)
    assert_close(logits, reference_outputs(reference, *inputs)[1])


@pytest.mark.parametrize(("shape", "head"), CASES)
def test_directories_saved_by_transformers_import_with_its_outputs(saved_by_transformers, shape, head):
    directory, reference = saved_by_transformers[shape, head]
    cfg, params = load_hf_directory(directory, head)
    _compare(build(cfg, params, head), reference, shape)


def test_a_pytorch_model_bin_with_the_tied_aliases_imports(tmp_path):
    """A legacy ``pytorch_model.bin`` as older transformers wrote it: the tied decoder copies and position ids too."""
    reference = random_reference("v2_like", "masked_lm", seed=2)
    reference.config.save_pretrained(tmp_path)
    state = {name: tensor.clone() for name, tensor in reference.state_dict().items()}
    assert "cls.predictions.decoder.weight" in state
    state["deberta.embeddings.position_ids"] = torch.arange(20)[None]
    torch.save(state, tmp_path / "pytorch_model.bin")
    _compare(build(*load_hf_directory(tmp_path, "masked_lm"), "masked_lm"), reference, "v2_like")


@pytest.mark.parametrize(("shape", "head"), CASES)
def test_export_loads_in_transformers_and_round_trips(tmp_path, shape, head):
    cfg = DebertaV2Config.from_hf(hf_config(shape).to_dict())
    model = DebertaV2(cfg, head=head, rngs=nnx.Rngs(3))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    noise = np.random.default_rng(0)
    params = jax.tree.map(lambda x: x + 0.1 * noise.standard_normal(x.shape, np.float32), params)  # biases too
    save_hf_directory(tmp_path, cfg, params, head)
    reference, info = HEADS[head].from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    _compare(build(cfg, params, head), reference.eval(), shape)
    cfg_back, params_back = load_hf_directory(tmp_path, head)
    assert cfg_back == cfg
    flat, flat_back = traverse_util.flatten_dict(params), traverse_util.flatten_dict(params_back)
    assert flat.keys() == flat_back.keys()
    for path, value in flat.items():
        np.testing.assert_array_equal(flat_back[path], np.asarray(value), err_msg=str(path))


def _tensors(shape: str = "v2_like", head: str = "masked_lm") -> tuple[DebertaV2Config, dict[str, np.ndarray]]:
    cfg = DebertaV2Config.from_hf(hf_config(shape).to_dict())
    shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: DebertaV2(cfg, head=head, rngs=nnx.Rngs(0)))))
    return cfg, params_to_hf(jax.tree.map(lambda x: np.zeros(x.shape, np.float32), shapes), cfg, head)


def test_mismatches_are_listed_in_one_message():
    cfg, hf = _tensors()
    query = "deberta.encoder.layer.1.attention.self.query_proj.weight"
    hf[query] = hf[query].T[:, :40]
    pos_key = "deberta.encoder.layer.0.attention.self.pos_key_proj.weight"
    hf[pos_key] = hf[pos_key].reshape(-1)
    del hf["deberta.encoder.rel_embeddings.weight"], hf["cls.predictions.bias"]
    hf["deberta.encoder.layer.2.output.dense.weight"] = np.zeros((48, 80), np.float32)
    hf["lm_predictions.lm_head.bias"] = np.zeros(100, np.float32)
    with pytest.raises(UserError) as error:
        params_from_hf(hf, cfg)
    assert str(error.value).splitlines() == [
        "checkpoint does not match the config:",
        "  missing tensor cls.predictions.bias",
        "  missing tensor deberta.encoder.rel_embeddings.weight",
        "  unexpected tensor deberta.encoder.layer.2.output.dense.weight",
        "  unexpected tensor lm_predictions.lm_head.bias",
        f"  tensor {pos_key} has shape (2304,); Hugging Face's is (48, 48)",
        f"  tensor {query} has shape (48, 40); Hugging Face's is (48, 48)",
    ]


def test_other_heads_tensors_are_refused_and_known_extras_skipped():
    """A classification checkpoint is not a masked-LM one; v3's replaced-token-detection head is skipped."""
    cfg, hf = _tensors(head="sequence_classification")
    with pytest.raises(UserError) as error:
        params_from_hf(hf, cfg, "masked_lm")
    message = str(error.value)
    assert "missing tensor cls.predictions.transform.dense.weight" in message
    assert "unexpected tensor pooler.dense.weight" in message and "unexpected tensor classifier.bias" in message
    _, hf = _tensors()
    hf["mask_predictions.classifier.weight"] = np.zeros((1, 48), np.float32)
    assert params_from_hf(hf, cfg, "masked_lm")["mlm_head"]["bias"].shape == (100,)


def test_save_refuses_parameters_of_another_shape_before_writing(tmp_path):
    cfg = DebertaV2Config.from_hf(hf_config("v3_like").to_dict())
    params = nnx.to_pure_dict(nnx.state(DebertaV2(cfg, head="masked_lm", rngs=nnx.Rngs(0)), nnx.Param))
    params["embeddings"]["word"] = np.zeros((99, 32), np.float32)
    del params["relative"]["norm"]
    params["extra"] = np.zeros(3, np.float32)
    with pytest.raises(UserError) as error:
        save_hf_directory(tmp_path / "out", cfg, params, "masked_lm")
    assert str(error.value).splitlines() == [
        "parameters do not match the config and the masked_lm head:",
        "  parameter embeddings/word has shape (99, 32); the config's is (100, 32)",
        "  missing parameter relative/norm/scale",
        "  missing parameter relative/norm/bias",
        "  unexpected parameter extra",
    ]
    with pytest.raises(UserError, match="unexpected parameter mlm_head/bias"):
        save_hf_directory(tmp_path / "out", cfg, _without_head(cfg), "sequence_classification")
    assert not (tmp_path / "out").exists()


def _without_head(cfg: DebertaV2Config) -> dict:
    params = nnx.to_pure_dict(nnx.state(DebertaV2(cfg, head="masked_lm", rngs=nnx.Rngs(0)), nnx.Param))
    classifier = DebertaV2(cfg, head="sequence_classification", rngs=nnx.Rngs(0))
    classifier = nnx.to_pure_dict(nnx.state(classifier, nnx.Param))
    return {**params, "classifier": classifier["classifier"]}


V3 = {**hf_config("v3_like").to_dict()}
BAD_CONFIGS = {  # config.json changes -> what the one error line says
    "deberta v1": (dict(model_type="deberta"), r"model_type='deberta' is DeBERTa v1"),
    "another architecture": (dict(model_type="bert", architectures=["BertForMaskedLM"]), "model_type='bert'"),
    "type and architectures disagree": (dict(architectures=["DebertaForMaskedLM"]), "disagree"),
    "no model_type": (dict(model_type=None, architectures=None), "has no model_type"),
    "convolution": (dict(conv_kernel_size=3), r"conv_kernel_size=3: the convolution layer .* not implemented"),
    "unknown activation": (dict(hidden_act="gelu_x"), r"unsupported hidden_act 'gelu_x'; t5x_tl implements .*relu"),
    "unknown pooler activation": (dict(pooler_hidden_act="mish"), "unsupported pooler_hidden_act 'mish'"),
    "unknown position term": (dict(pos_att_type="p2c|p2p"), r"unsupported pos_att_type 'p2c\|p2p'"),
    "unknown relative norm": (dict(norm_rel_ebd="rms_norm"), "unsupported norm_rel_ebd 'rms_norm'"),
    "untied output": (dict(tie_word_embeddings=False), "tie_word_embeddings=false"),
    "head size disagrees": (dict(attention_head_size=16), "attention_head_size=16 differs from 8"),
    "pooler size disagrees": (dict(pooler_hidden_size=64), "pooler_hidden_size=64 differs from 32"),
    "heads do not divide": (dict(num_attention_heads=5), "not a multiple of num_heads=5: the fields disagree"),
    "labels disagree": (dict(num_labels=4), "num_labels=4 and its 3 id2label entries disagree"),
    "relative norm without table": (dict(relative_attention=False), "no table to normalise: the fields disagree"),
    "lm_predictions of another width": (dict(legacy=False, embedding_size=16), "legacy=false .* disagree"),
    "missing size": (dict(intermediate_size=None), "the config has no intermediate_size"),
    "bad size": (dict(hidden_size="32"), r"hidden_size='32' is invalid"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_configs_are_one_clear_error(tmp_path, case):
    changes, message = BAD_CONFIGS[case]
    config = {k: v for k, v in {**V3, **changes}.items() if v is not None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=message) as error:
        load_hf_directory(tmp_path)
    assert len(str(error.value).splitlines()) == 1


def test_bad_files_and_label_counts_are_one_clear_error(saved_by_transformers, tmp_path):
    directory, _ = saved_by_transformers["v2_like", "sequence_classification"]
    with pytest.raises(UserError, match="holds a classification head of 2 labels, not the 5 asked for"):
        load_hf_directory(directory, "sequence_classification", num_labels=5)
    assert load_hf_directory(directory, "sequence_classification", num_labels=2)[0].num_labels == 2
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_hf_directory(tmp_path)
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    with pytest.raises(UserError, match=r"neither \*\.safetensors nor pytorch_model\.bin"):
        load_hf_directory(tmp_path)
    weights = (directory / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(UserError, match="damaged or incomplete"):
        load_hf_directory(tmp_path)
    with pytest.raises(UserError, match="unknown head 'token_classification'"):
        load_hf_directory(directory, "token_classification")


def test_config_round_trips_through_transformers():
    """Our config.json builds the same transformers config, and reads back as the same config."""
    cfg = DebertaV2Config(vocab_size=100, hidden_size=40, num_layers=2, num_heads=5, intermediate_size=48,
                          embedding_size=24, pos_att_type="c2p", share_att_key=False, position_buckets=-1,
                          max_relative_positions=7, classifier_dropout=0.3, pooler_hidden_act="tanh", num_labels=4,
                          legacy_mlm_head=True, type_vocab_size=2)  # fmt: skip
    reference = transformers.DebertaV2Config(**cfg.to_hf("sequence_classification"))
    assert reference.pos_att_type == ["c2p"] and reference.cls_dropout == 0.3 and reference.num_labels == 4
    assert DebertaV2Config.from_hf(reference.to_dict()) == cfg
    assert dataclasses.replace(cfg, embedding_size=None).to_hf()["embedding_size"] == 40


def test_safetensors_written_are_float32_in_transformers_names(tmp_path):
    cfg = DebertaV2Config.from_hf(hf_config("v3_like").to_dict(), param_dtype="bfloat16")
    params = nnx.to_pure_dict(nnx.state(DebertaV2(cfg, head="masked_lm", rngs=nnx.Rngs(0)), nnx.Param))
    save_hf_directory(tmp_path, cfg, params, "masked_lm")
    tensors = safetensors.numpy.load_file(tmp_path / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {np.dtype(np.float32)}
    assert set(tensors) == set(_tensors("v3_like")[1])
    assert load_hf_directory(tmp_path)[1]["embeddings"]["word"].dtype == np.float32  # config.json has no dtype
