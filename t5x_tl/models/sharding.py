"""Logical sharding constraints on activations, as T5X and MaxText put them on the outputs of every block.

Layers call ``constrain(x, BLD)`` on what they produce; the logical names (``activation_batch``,
``activation_embed``, ...) become mesh axes through the rule table in scope (``nnx.logical_axis_rules``, which the
train and eval steps enter with the job's rules). Activations have names of their own, apart from the parameters'
``embed``, ``mlp``, ...: under FSDP a parameter's ``embed`` is split over ``fsdp`` while an activation's d_model
stays whole on every device (its batch is what ``fsdp`` splits). ``RULE_PRESETS`` below hold each preset's
table of parameter and activation names; :mod:`t5x_tl.train.partitioning` applies them on the mesh.

Without rules or without a mesh in scope (a model run eagerly, in tests, in decoding), or on a mesh of explicit
axes (whose arrays carry their shardings in their types), ``constrain`` returns its input unchanged, so nothing
numerical depends on it. A logical axis the rules do not name is left to XLA (unconstrained); one mapped to
``None`` is replicated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import jax
from flax import nnx
from flax.core import spmd
from jax.sharding import PartitionSpec

BATCH = "activation_batch"
LENGTH = "activation_length"
EMBED = "activation_embed"
HEADS = "activation_heads"
KV = "activation_kv"
MLP = "activation_mlp"
VOCAB = "activation_vocab"

BLD = (BATCH, LENGTH, EMBED)  # embeddings, attention outputs, the residual stream
BLHK = (BATCH, LENGTH, HEADS, KV)  # queries, keys, values
BLF = (BATCH, LENGTH, MLP)  # the MLP's hidden layer
BLV = (BATCH, LENGTH, VOCAB)  # logits

MESH_AXES = ("replica", "data", "fsdp", "model")
BATCH_AXES = ("replica", "data", "fsdp")  # the batch is split over all three; parameters only over fsdp, model


def _rules(embed: str | None, tensor: str | None) -> tuple:
    return (
        ("batch", BATCH_AXES),
        ("layers", None),  # the stacked-layers axis of scanned parameters
        ("vocab", tensor),
        ("mlp", tensor),
        ("heads", tensor),
        ("embed", embed),
        ("kv", None),
        ("relpos_buckets", None),
        # Activations (above), named apart from the parameters as in T5X/MaxText: the batch is
        # split like the data, over every batch axis; d_model stays whole on every device (FSDP shards the
        # parameters' embed, never the residual stream; tensor parallelism keeps it replicated, Megatron-style,
        # between the column- and row-split matmuls); heads, MLP hidden units and logits follow the tensor axis.
        ("activation_batch", BATCH_AXES),
        ("activation_length", None),
        ("activation_embed", None),
        ("activation_heads", tensor),
        ("activation_kv", None),
        ("activation_mlp", tensor),
        ("activation_vocab", tensor),
    )


# Logical axis -> mesh axis tables. Data parallelism replicates parameters; FSDP shards each along d_model
# ("embed") over the fsdp axis and gathers it per layer; tensor parallelism splits heads, MLP and vocabulary
# over the model axis (Megatron-style); the last combines both, as T5X and MaxText do on pods.
RULE_PRESETS: dict[str, tuple] = {
    "data_parallel": _rules(None, None),
    "fsdp": _rules("fsdp", None),
    "tensor_parallel": _rules(None, "model"),
    "fsdp_tensor_parallel": _rules("fsdp", "model"),
}


@contextlib.contextmanager
def activation_rules(rules: Sequence[tuple] | None) -> Iterator[None]:
    """The rule table in scope for :func:`constrain` (nothing changes for empty ``rules``)."""
    if not rules:
        yield
        return
    with nnx.logical_axis_rules([tuple(rule) for rule in rules]):
        yield


def logical_spec(axes: Sequence[str | None], rules: Sequence[tuple], mesh_axes: Sequence[str]) -> PartitionSpec:
    """Logical axis names -> a PartitionSpec over ``mesh_axes``; a mesh axis is used at most once (first wins)."""
    table = {}
    for logical, mesh in rules:
        table.setdefault(logical, mesh)
    used: set[str] = set()
    spec = []
    for name in axes:
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            spec.append(PartitionSpec.UNCONSTRAINED)
            continue
        target = table[name]
        names = () if target is None else (target,) if isinstance(target, str) else tuple(target)
        names = tuple(n for n in names if n in mesh_axes and n not in used)
        used.update(names)
        spec.append(None if not names else names[0] if len(names) == 1 else names)
    return PartitionSpec(*spec)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """``x`` constrained to the sharding its logical ``axes`` (one per dimension) get from the rules in scope."""
    if x.ndim != len(axes):
        raise ValueError(f"{len(axes)} logical axes {tuple(axes)} for an activation of shape {x.shape}")
    rules = spmd.get_logical_axis_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if not rules or mesh.empty or not mesh.are_all_axes_auto:  # explicit axes carry shardings in the types
        return x
    spec = logical_spec(axes, rules, mesh.axis_names)
    if all(entry is PartitionSpec.UNCONSTRAINED for entry in spec):
        return x
    return jax.lax.with_sharding_constraint(x, spec)
