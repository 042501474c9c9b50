"""The schema of a training job's config, and its validation at start-up.

Job files in ``configs/`` start from :func:`base_config` and change values; the returned ConfigDict is
locked, so a misspelt key fails at once instead of adding a new, unused field. :func:`validate` then checks
every value and names the key, the bad value and the allowed ones.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.data.curriculum.strategies import STRATEGIES, PlateauRule
from t5x_tl.errors import UserError
from t5x_tl.models.attention import ATTENTION_IMPLS
from t5x_tl.models.kinds import ModelConfig, ModelSettings
from t5x_tl.models.registry import MODEL_KINDS, model_kind
from t5x_tl.models.segments import ALIGNMENTS, MemoryConfig
from t5x_tl.models.sharding import RULE_PRESETS
from t5x_tl.models.sizes import padded_vocab_size
from t5x_tl.models.stack import REMAT_POLICIES

HOST_SHARDINGS = ("auto", "source", "examples")  # see data.host_sharding below
OPTIMIZERS = ("adafactor", "adamw")  # t5x_tl.train.optimizers builds them
SCHEDULES = ("rsqrt", "constant", "warmup_cosine")

DEFAULT_RULES = RULE_PRESETS["tensor_parallel"]  # with model=1 (the default mesh), plain data parallelism


def base_config() -> ConfigDict:
    """Every key a job may set, with defaults for the CPU-sized span-corruption pretraining job."""
    cfg = ConfigDict()
    cfg.seed = 0
    cfg.model = ConfigDict(
        dict(
            kind="encoder_decoder",  # or decoder_only, prefix_lm, encoder_only (t5x_tl.models.kinds)
            size="tiny",
            dtype="float32",
            param_dtype="float32",
            dropout_rate=0.0,
            scan_layers=True,  # lax.scan over the layers (flat compile time) or an unrolled loop
            remat_policy="none",  # t5x_tl.models.stack.REMAT_POLICIES: none, full, dots, dots_with_no_batch_dims
            # auto (cuDNN's fused attention on NVIDIA GPUs where it applies, else xla), xla (einsums + softmax),
            # dot_product (jax.nn.dot_product_attention's XLA code) or cudnn (t5x_tl.models.attention)
            attention_impl="auto",
            # a Recurrent Memory Transformer over the model kind (t5x_tl.models.rmt) when segment_size > 0
            rmt=ConfigDict(
                dict(
                    segment_size=0,  # input tokens per segment; 0: no recurrent memory
                    memory_size=10,
                    max_segments=4,  # the inputs (decoder-only: targets) length must fit in these segments
                    align="left",  # left: the short segment is the last; right: the first
                    segment_eos=False,  # end every encoder segment with EOS
                    bptt_depth=0,  # stop gradients through the memory every this many segments (0: never)
                    remat=False,  # recompute each segment in the backward pass
                    write=True,  # False: the memory is never updated (an ablation)
                    max_length=512,  # the longest sequence the backbone is meant to see, memory included
                )
            ),
        )
    )
    cfg.data = ConfigDict(
        dict(
            task="",  # empty: `objective` over the built-in corpus described below, or over `text_files`
            # your own text, a glob per split: .jsonl files with a "text" field per line, or a document per line
            text_files=ConfigDict(dict(train="", validation="")),
            objective="random_spans_d15_s3",  # a variant of t5x_tl.data.tasks.pretraining, e.g. prefix_lm
            concatenate_documents=False,  # text_files: T5's concatenation of 128 documents before the objective
            task_modules=(),  # modules to import so that `task` is registered, e.g. ("my_project.tasks",)
            cache_dir="",  # empty: $T5X_TL_DATA_DIR, else the checkout's data/, else ~/.cache/t5x_tl
            vocabulary="sentencepiece",
            sentencepiece_size=1024,
            corpus=ConfigDict(dict(seed=0, num_entities=400, num_train_documents=2000, num_validation_documents=100)),
            inputs_length=256,
            targets_length=0,  # 0: derived from inputs_length so span corruption loses no token
            batch_size=32,  # global, across all hosts
            pack=True,
            # "source": SeqIO shards the source by host (no host preprocesses more than its share; the data
            # order depends on the host count); "examples": each host preprocesses the whole stream and keeps
            # its round-robin share (the same global batches on any number of hosts, at N times the input work);
            # "auto": "source" on more than one process
            host_sharding="auto",
        )
    )
    cfg.train = ConfigDict(
        dict(
            steps=1000,
            log_every=20,  # train loss, accuracy, tokens/s, model FLOP/s and MFU every this many steps
            eval_every=100,
            eval_batches=8,
            z_loss=1e-4,
            microbatches=1,  # gradient accumulation: the batch is split in this many, one update per batch
            peak_flops_per_device=0.0,  # MFU's denominator; 0: the data-sheet bfloat16 peak where known
        )
    )
    cfg.optimizer = ConfigDict(
        dict(
            name="adafactor",
            learning_rate=1.0,
            schedule="rsqrt",
            warmup_steps=10_000,
            weight_decay=0.0,
            grad_clip_norm=0.0,
        )
    )
    cfg.curriculum = ConfigDict(
        dict(
            strategy="none",  # none: train on data.task; or baseline, naive, mixed, combined (see STRATEGIES)
            task="",  # the level tasks' name template, e.g. "lte_program_l{length}_n{nesting}"
            length=1,  # the target level
            nesting=1,
            patience=3,  # the naive level moves on after this many evaluations without improvement (0: never)
            min_delta=0.0,  # ... of more than this over the level's best validation accuracy
            advance_at=1.0,  # ... or at once when its validation accuracy reaches this
        )
    )
    cfg.checkpoint = ConfigDict(
        dict(
            every=200,
            keep=3,
            init_from="",  # a fresh run starts from these pretrained parameters (work dir, checkpoints/, import)
            init_mapping=(),  # (target regex, source template) rules over parameter paths; unmatched: same path
        )
    )
    cfg.distributed = ConfigDict(
        dict(
            coordinator="",  # host:port of process 0; empty: single process, unless `auto`
            num_processes=1,
            process_id=0,
            auto=False,  # let JAX detect the cluster (TPU VM pods, SLURM, Open MPI)
            timeout_s=300,  # how long to wait for the coordinator and every process to join
            heartbeat_s=100,  # a process silent this long fails the run instead of hanging it
        )
    )
    cfg.partitioning = ConfigDict(
        dict(
            replica=1,  # mesh axes, slowest first; one of them may be -1 (the devices left over)
            data=-1,
            fsdp=1,
            model=1,
            preset="tensor_parallel",  # t5x_tl.models.sharding.RULE_PRESETS
            rules=(),  # a custom (logical axis, mesh axis) table instead of the preset
        )
    )
    return cfg


def load_config_file(path: str | Path) -> ConfigDict:
    """``get_config()`` of a config file (``configs/*.py`` are files, not a package), as ``--config=`` loads it."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _flatten(cfg: ConfigDict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, ConfigDict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def flat_keys(cfg: ConfigDict) -> set[str]:
    """Dotted names of every leaf key, e.g. ``train.steps``."""
    return set(_flatten(cfg))


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise UserError(
            f"config.{key}={value!r} is invalid: {allowed}. Fix it in the config file or pass --config.{key}=..."
        )


def _positive(flat: dict, keys: Iterable[str]) -> None:
    for key in keys:
        _check(isinstance(flat[key], int) and flat[key] > 0, key, flat[key], "it must be a positive integer")


def _one_of(flat: dict, key: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    _check(flat[key] in allowed, key, flat[key], f"choose one of {allowed}")


def validate(cfg: ConfigDict) -> ConfigDict:
    """Raises :class:`UserError` naming the first unknown, missing or out-of-range key; returns ``cfg``."""
    flat, schema = _flatten(cfg), _flatten(base_config())
    unknown, missing = sorted(set(flat) - set(schema)), sorted(set(schema) - set(flat))
    if unknown:
        raise UserError(f"unknown config keys {unknown}; the known keys are {sorted(schema)}")
    if missing:
        raise UserError(f"config is missing keys {missing}; start job configs from t5x_tl.config.base_config()")
    _one_of(flat, "model.kind", tuple(MODEL_KINDS))
    _one_of(flat, "model.size", model_kind(flat["model.kind"]).sizes())
    _one_of(flat, "model.remat_policy", REMAT_POLICIES)
    _one_of(flat, "model.attention_impl", ATTENTION_IMPLS)
    _check(
        isinstance(flat["model.scan_layers"], bool), "model.scan_layers", flat["model.scan_layers"], "use True or False"
    )
    _one_of(flat, "model.dtype", ("float32", "bfloat16"))
    _one_of(flat, "model.param_dtype", ("float32", "bfloat16"))
    _one_of(flat, "data.vocabulary", ("sentencepiece", "byte"))
    _one_of(flat, "data.host_sharding", HOST_SHARDINGS)
    _one_of(flat, "optimizer.name", OPTIMIZERS)
    _one_of(flat, "optimizer.schedule", SCHEDULES)
    _positive(flat, ["data.inputs_length", "data.batch_size", "data.sentencepiece_size", "train.steps"])
    _positive(flat, ["train.log_every", "train.eval_every", "train.eval_batches", "train.microbatches"])
    _positive(flat, ["checkpoint.every", "checkpoint.keep"])
    _positive(flat, [f"data.corpus.{k}" for k in ("num_entities", "num_train_documents", "num_validation_documents")])
    in_unit: Callable[[float], bool] = lambda x: 0.0 <= x < 1.0
    _check(
        in_unit(flat["model.dropout_rate"]), "model.dropout_rate", flat["model.dropout_rate"], "it must be in [0, 1)"
    )
    _check(
        flat["optimizer.learning_rate"] > 0,
        "optimizer.learning_rate",
        flat["optimizer.learning_rate"],
        "it must be > 0",
    )
    _check(
        flat["train.peak_flops_per_device"] >= 0,
        "train.peak_flops_per_device",
        flat["train.peak_flops_per_device"],
        "it must be >= 0 (0: the data-sheet peak of a known accelerator)",
    )
    _check(flat["data.targets_length"] >= 0, "data.targets_length", flat["data.targets_length"], "use 0 to derive it")
    for key in ("data.text_files.train", "data.text_files.validation", "data.objective"):
        _check(isinstance(flat[key], str), key, flat[key], "it must be a string")
    _check(
        isinstance(flat["data.concatenate_documents"], bool),
        "data.concatenate_documents",
        flat["data.concatenate_documents"],
        "use True or False",
    )
    _validate_curriculum(flat)
    _validate_rmt(flat)
    memory_config(cfg)
    _positive(flat, ["distributed.num_processes", "distributed.timeout_s", "distributed.heartbeat_s"])
    _check(
        0 <= flat["distributed.process_id"] < flat["distributed.num_processes"],
        "distributed.process_id",
        flat["distributed.process_id"],
        f"it must be in 0..{flat['distributed.num_processes'] - 1} (config.distributed.num_processes - 1)",
    )
    for rule in flat["checkpoint.init_mapping"]:
        try:
            assert len(rule) == 2
            re.compile(rule[0])
        except (AssertionError, TypeError, re.error) as error:
            raise UserError(
                f"config.checkpoint.init_mapping rule {rule!r} is invalid ({error or 'not a pair'}): give "
                "(target regex, source template) pairs, e.g. (r'encoder/(.*)', r'encoder/\\1')"
            ) from error
    for axis in ("replica", "data", "fsdp", "model"):
        size = flat[f"partitioning.{axis}"]
        _check(size == -1 or size > 0, f"partitioning.{axis}", size, "it must be positive or -1 (fill the rest)")
    if not flat["partitioning.rules"]:
        _one_of(flat, "partitioning.preset", RULE_PRESETS)
    return cfg


def memory_config(cfg: ConfigDict) -> MemoryConfig | None:
    """The job's Recurrent Memory Transformer settings, or None when ``model.rmt.segment_size`` is 0."""
    rmt = cfg.model.rmt
    if not rmt.segment_size:
        return None
    kind = model_kind(cfg.model.kind)
    segmented = kind.features.sequence_features()  # what the model kind feeds the backbone first
    try:
        memory = MemoryConfig(**rmt.to_dict())
        kind.check_memory(memory)
        memory.num_segments(sum(cfg.data[f"{name}_length"] for name in segmented))
    except ValueError as error:
        where = " + ".join(f"config.data.{name}_length" for name in segmented)
        raise UserError(f"config.model.rmt: {error} (the segmented length is {where})") from error
    return memory


def model_config(cfg: ConfigDict, vocab_size: int) -> ModelConfig:
    """The job's model for a vocabulary of ``vocab_size`` entries (padded as T5X pads it). Here, free of SeqIO and
    TensorFlow, so that tools without them (``scripts/gpu_check.py``) build the model the loop trains."""
    model = cfg.model
    settings = ModelSettings(
        model.dropout_rate, model.dtype, model.param_dtype, model.scan_layers, model.remat_policy, model.attention_impl
    )
    try:
        return model_kind(model.kind).make_config(model.size, padded_vocab_size(vocab_size), settings)
    except ValueError as error:
        raise UserError(f"config.model: {error}") from error


def _validate_rmt(flat: dict) -> None:
    if flat["model.rmt.segment_size"] == 0:
        return
    _check(
        not flat["data.pack"],
        "data.pack",
        flat["data.pack"],
        "a recurrent memory reads one long example per row: set --config.data.pack=False",
    )
    _one_of(flat, "model.rmt.align", ALIGNMENTS)
    _positive(flat, ["model.rmt.segment_size", "model.rmt.max_segments", "model.rmt.max_length"])
    for key in ("model.rmt.memory_size", "model.rmt.bptt_depth"):
        _check(isinstance(flat[key], int) and flat[key] >= 0, key, flat[key], "it must be an integer >= 0")


def _validate_curriculum(flat: dict) -> None:
    _one_of(flat, "curriculum.strategy", ("none", *STRATEGIES))
    if flat["curriculum.strategy"] == "none":
        return
    _check(
        "{length}" in flat["curriculum.task"],
        "curriculum.task",
        flat["curriculum.task"],
        "name the level tasks by a template with {length} (and {nesting}): 'lte_program_l{length}_n{nesting}'",
    )
    _check(
        not flat["data.task"],
        "data.task",
        flat["data.task"],
        "a curriculum draws from config.curriculum.task; leave data.task empty",
    )
    _positive(flat, ["curriculum.length", "curriculum.nesting"])
    if flat["curriculum.strategy"] in ("naive", "combined"):
        rule = PlateauRule(flat["curriculum.patience"], flat["curriculum.min_delta"], flat["curriculum.advance_at"])
        try:
            rule.check(evaluations=flat["train.steps"] // flat["train.eval_every"])
        except ValueError as error:
            raise UserError(f"config.curriculum: {error}") from error
