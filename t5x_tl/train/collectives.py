"""Collectives of a compiled XLA program, read from its HLO text: how many run per call, and how many bytes.

``count_collectives(jax.jit(f).lower(*args).compile().as_text())`` returns, for each kind (all-gather,
reduce-scatter, all-reduce, all-to-all, collective-permute), the number of executions per call and the bytes
they produce on one device (the per-device result shapes of the partitioned program: an all-gather's gathered
array, a reduce-scatter's scattered shard, an all-reduce's reduced array; a combined all-reduce of a tuple counts
once with the bytes of all its parts).

Each collective counts once: a synchronous op by itself; an asynchronous ``<kind>-start``/``<kind>-done`` pair
by its start, with the done's shape (a start's tuple also holds its operands); a collective wrapped in an
``async-start`` computation by the wrapped op. Ops inside a ``while`` body count once per iteration where XLA
knows the trip count (a ``lax.scan`` over layers), else once.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict

KINDS = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")

_DTYPE_BYTES = {
    "pred": 1,
    "s4": 1,
    "u4": 1,
    "s8": 1,
    "u8": 1,
    "f8e4m3fn": 1,
    "f8e5m2": 1,
    "s16": 2,
    "u16": 2,
    "f16": 2,
    "bf16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
    "c64": 8,
    "c128": 16,
}
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s+\(.*\)\s+->\s+.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s+=\s+(.*)$")
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([0-9,]*)\]")
_CALLEES = re.compile(
    r"\b(to_apply|calls|body|condition|true_computation|false_computation|branch_computations)="
    r"(\{[^}]*\}|%?[\w.\-]+)"
)
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


@dataclasses.dataclass(frozen=True)
class Collective:
    """Executions per call of one kind of collective, and the per-device bytes they produce."""

    count: int = 0
    bytes: int = 0


@dataclasses.dataclass(frozen=True)
class _Op:
    name: str
    shape: str
    opcode: str
    operands: str
    attributes: str


def shape_bytes(shape: str) -> int:
    """Bytes of an HLO shape: an array ``f32[16,128]{1,0}`` or a tuple of them (layouts ignored)."""
    total = 0
    for dtype, dims in _ARRAY.findall(shape):
        if dtype not in _DTYPE_BYTES:
            raise ValueError(f"unknown HLO element type {dtype!r} in {shape!r}")
        size = 1
        for dim in filter(None, dims.split(",")):
            size *= int(dim)
        total += size * _DTYPE_BYTES[dtype]
    return total


def _closing(text: str, depth: int) -> int:
    """Index of the parenthesis that brings ``depth`` open ones to zero (``len(text)`` if none does)."""
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            return index
    return len(text)


def _split_instruction(rhs: str) -> tuple[str, str, str, str]:
    """``shape opcode(operands), attributes`` -> its four parts (a tuple shape may hold spaces)."""
    if rhs.startswith("("):
        end = _closing(rhs, 0)
        shape, rest = rhs[: end + 1], rhs[end + 1 :].lstrip()
    else:
        shape, _, rest = rhs.partition(" ")
    opcode, _, rest = rest.partition("(")
    end = _closing(rest, 1)
    return shape, opcode.strip(), rest[:end], rest[end + 1 :]


def _parse(hlo_text: str) -> tuple[dict[str, list[_Op]], str]:
    computations: dict[str, list[_Op]] = {}
    entry, current = "", None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = header.group(1)
            computations[current] = []
            if line.startswith("ENTRY"):
                entry = current
            continue
        if line.startswith("}"):
            current = None
            continue
        instruction = _INSTRUCTION.match(line) if current is not None else None
        if instruction:
            computations[current].append(_Op(instruction.group(1), *_split_instruction(instruction.group(2))))
    if not entry:
        raise ValueError("no ENTRY computation in the HLO text")
    return computations, entry


def _executions(computations: dict[str, list[_Op]], entry: str) -> dict[str, int]:
    """How many times each computation runs per call of the entry (while bodies times their trip count)."""
    calls: dict[str, list[tuple[str, int]]] = defaultdict(list)  # callee -> [(caller, times per caller run)]
    for caller, ops in computations.items():
        for op in ops:
            trip = _TRIP_COUNT.search(op.attributes)
            for role, names in _CALLEES.findall(op.attributes):
                times = int(trip.group(1)) if (op.opcode == "while" and trip and role == "body") else 1
                for callee in re.findall(r"%?([\w.\-]+)", names):
                    calls[callee].append((caller, times))
    runs: dict[str, int] = {}

    def count(name: str, seen: frozenset) -> int:
        if name == entry:
            return 1
        if name not in runs:
            if name in seen:
                raise ValueError(f"HLO computation {name} calls itself")
            runs[name] = sum(count(caller, seen | {name}) * times for caller, times in calls.get(name, ()))
        return runs[name]

    return {name: count(name, frozenset()) for name in computations}


def count_collectives(hlo_text: str) -> dict[str, Collective]:
    """Per collective kind (all of :data:`KINDS`, zeros included): executions per call and per-device bytes."""
    computations, entry = _parse(hlo_text)
    runs = _executions(computations, entry)
    done_shapes = {}
    for ops in computations.values():
        for op in ops:
            if op.opcode.endswith("-done"):
                done_shapes[op.operands.strip().lstrip("%").split(",")[0].strip()] = op.shape
    totals: dict[str, list[int]] = {kind: [0, 0] for kind in KINDS}
    for name, ops in computations.items():
        for op in ops:
            if op.opcode in KINDS:
                kind, shape = op.opcode, op.shape
            elif op.opcode.endswith("-start") and op.opcode.removesuffix("-start") in KINDS:
                kind, shape = op.opcode.removesuffix("-start"), done_shapes.get(op.name, op.shape)
            else:
                continue
            totals[kind][0] += runs[name]
            totals[kind][1] += runs[name] * shape_bytes(shape)
    return {kind: Collective(count, size) for kind, (count, size) in totals.items()}


def format_table(rows: dict[str, dict[str, Collective]]) -> str:
    """A Markdown table: one row per program (e.g. preset), ``count / bytes`` per collective kind."""
    header = "| | " + " | ".join(KINDS) + " |"
    lines = [header, "|" + " --- |" * (len(KINDS) + 1)]
    for label, stats in rows.items():
        cells = [f"{stats[k].count} / {_human(stats[k].bytes)}" if stats[k].count else "-" for k in KINDS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _human(size: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def differences(golden: dict, measured: dict) -> list[str]:
    """One line per program and collective kind whose count or bytes differ, for files laid out as
    ``{"setup": ..., "presets": {name: {"collectives": {kind: {"count": n, "bytes": b}}}}}``
    (``scripts/collectives.py``); a changed setup or a missing program is a line too."""
    problems = []
    if golden.get("setup") != measured.get("setup"):
        problems.append(f"the setup changed: golden {golden.get('setup')}, now {measured.get('setup')}")
    for name, now in measured["presets"].items():
        expected = golden.get("presets", {}).get(name)
        if expected is None:
            problems.append(f"{name}: no golden entry")
            continue
        for kind in KINDS:
            want = expected["collectives"].get(kind, {"count": 0, "bytes": 0})
            got = now["collectives"].get(kind, {"count": 0, "bytes": 0})
            if want != got:
                problems.append(
                    f"{name}: {kind} count {got['count']} (golden {want['count']}), "
                    f"bytes {got['bytes']} (golden {want['bytes']})"
                )
    return problems
