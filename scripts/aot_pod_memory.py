"""A pod, simulated: T5 v1.1 training steps compiled ahead of time for 64- and 256-device meshes on host CPUs.

For every size x device count x partitioning preset x remat policy asked for, this compiles the training step
``t5x_tl-train`` runs (``t5x_tl.train.aot``: the loop's step, Adafactor, state shardings and donation;
bfloat16 activations over float32 parameters, scanned layers, vocabulary 32,128; batch 2,048 x inputs 512 /
targets 114) from shapes alone on forced host CPU devices, one child process per device count, and prints:

- per-device memory from ``compiled.memory_analysis()``: arguments, outputs, temporaries, aliased (donated)
  bytes, and total = argument + output + temp - alias;
- the collectives the compiled HLO runs per step, with their per-device bytes (``t5x_tl.train.collectives``);
- the analytic model FLOPs per device (``t5x_tl.train.flops.train_step_flops`` / devices);
- which configurations fit in 16 GiB (TPU v5e), 80 GiB (H100), 95 GiB (TPU v5p), 141 GiB (H200) per device;
- a one-line-per-configuration summary (the README's table).

    python scripts/aot_pod_memory.py --out=/tmp/aot_pod_memory.json            # the whole table
    python scripts/aot_pod_memory.py --sizes base --devices 64 --remat full    # a subset
    python scripts/aot_pod_memory.py --tables /tmp/aot_pod_memory.json         # print the tables of a run again

XLA:CPU's buffer assignment approximates, not reproduces, a TPU or GPU compile: those compilers fuse, schedule,
rematerialise and pad (TPU tiles) differently and turn all-reduce + slice into reduce-scatter, which XLA:CPU
does not. XLA:CPU also hoists float32 copies of the scanned layers' saved bfloat16 activations out of the
backward loop, which accelerators have no reason to do: each configuration is compiled with that pass off (the
estimate) and, with ``--loop_hoisting both`` (the default), once more as XLA:CPU is (``t5x_tl.train.aot``,
``NO_LOOP_HOISTING``). Read the memory as an estimate of the same program's needs, and leave the runtime room.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GIB = 2**30
# Per-device memory of each chip in GiB, as the vendors state it (TPU v5e 16 GB HBM2e, H100 SXM 80 GB,
# TPU v5p 95 GB, H200 141 GB); the runtime and framework take some of it.
CHIPS = {"TPU v5e": 16, "H100": 80, "TPU v5p": 95, "H200": 141}
SIZES = ("base", "large", "xl", "xxl")
DEVICES = (64, 256)
PRESETS = ("fsdp", "fsdp_tensor_parallel")
REMATS = ("none", "full")


def _parser() -> argparse.ArgumentParser:
    from t5x_tl.models.sharding import RULE_PRESETS
    from t5x_tl.models.sizes import T5_1_1_SIZES
    from t5x_tl.models.stack import REMAT_POLICIES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(T5_1_1_SIZES))
    parser.add_argument("--devices", nargs="+", type=int, default=list(DEVICES))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(RULE_PRESETS))
    parser.add_argument("--remat", nargs="+", default=list(REMATS), choices=list(REMAT_POLICIES))
    parser.add_argument("--model_axis", type=int, default=0, help="tensor-parallel axis (0: 8, or what divides)")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=114)
    parser.add_argument("--per_config", action="store_true", help="one child process per configuration")
    parser.add_argument("--full_codegen", action="store_true", help="keep LLVM's optimisations (slower)")
    parser.add_argument(
        "--loop_hoisting",
        choices=("off", "on", "both"),
        default="both",
        help="XLA:CPU's while-loop invariant code motion: off (the estimate), on (XLA:CPU as is), both",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--tables", type=Path, help="print the tables of an earlier --out file and exit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser


def setups(args: argparse.Namespace, devices: int) -> list:
    from t5x_tl.train.aot import PodSetup

    return [
        PodSetup(
            size,
            devices,
            preset,
            remat,
            batch_size=args.batch,
            inputs_length=args.inputs,
            targets_length=args.targets,
            model_axis=args.model_axis,
        )
        for size in args.sizes
        for preset in args.presets
        for remat in args.remat
    ]


def child(args: argparse.Namespace) -> int:
    """Runs in a fresh process: forces ``--devices`` CPU devices, compiles each setup, prints a JSON line each."""
    import jax

    (devices,) = args.devices
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", devices)
    from t5x_tl.train.aot import analyze

    for setup in setups(args, devices):
        try:
            result = analyze(setup, not args.full_codegen, loop_hoisting=args.loop_hoisting == "on")
            if args.loop_hoisting == "both":
                as_is = analyze(setup, not args.full_codegen, loop_hoisting=True)
                result["xla_cpu_as_is"] = {key: as_is[key] for key in ("memory_bytes_per_device", "compile_s")}
        except Exception as error:  # reported per configuration; the others still run
            result = {
                "setup": dataclasses.asdict(setup),
                "error": f"{type(error).__name__}: {str(error).splitlines()[0][:500]}",
            }
        print("RESULT " + json.dumps(result), flush=True)
    return 0


def _child_command(args: argparse.Namespace, devices: int, size: str | None = None, preset=None, remat=None):
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--devices", str(devices)]
    command += ["--sizes", *([size] if size else args.sizes), "--presets", *([preset] if preset else args.presets)]
    command += ["--remat", *([remat] if remat else args.remat), "--model_axis", str(args.model_axis)]
    command += ["--batch", str(args.batch), "--inputs", str(args.inputs), "--targets", str(args.targets)]
    command += ["--loop_hoisting", args.loop_hoisting]
    return command + (["--full_codegen"] if args.full_codegen else [])


def run_children(args: argparse.Namespace) -> list[dict]:
    """One child per device count (or per configuration), its results streamed back and saved as they come."""
    commands = []
    for devices in args.devices:
        if args.per_config:
            commands += [
                _child_command(args, devices, size, preset, remat)
                for size in args.sizes
                for preset in args.presets
                for remat in args.remat
            ]
        else:
            commands.append(_child_command(args, devices))
    results: list[dict] = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for command in commands:
        start = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
            for line in process.stdout:
                if not line.startswith("RESULT "):
                    continue
                result = json.loads(line.removeprefix("RESULT "))
                results.append(result)
                print(_progress(result), file=sys.stderr, flush=True)
                _save(args.out, results)
        if process.returncode:
            print(f"child exited {process.returncode}: {' '.join(command[2:])}", file=sys.stderr)
        print(f"[{time.perf_counter() - start:.0f} s for {' '.join(command[2:])}]", file=sys.stderr, flush=True)
    return results


def _save(path: Path | None, results: list[dict]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"results": results}, indent=1) + "\n")


def _label(result: dict) -> str:
    s = result["setup"]
    return f"{s['size']} / {s['devices']} / {s['preset']} / remat {s['remat']}"


def _progress(result: dict) -> str:
    if "error" in result:
        return f"{_label(result)}: {result['error']}"
    total = result["memory_bytes_per_device"]["total"] / GIB
    return f"{_label(result)}: {total:.2f} GiB per device, compiled in {result['compile_s']:.1f} s"


def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def _mesh(result: dict) -> str:
    return " x ".join(f"{axis} {n}" for axis, n in result["mesh"].items() if n > 1) or "1"


def _collectives(result: dict, kinds: tuple[str, ...]) -> str:
    stats = result["collectives_per_step"]
    count = sum(stats[k]["count"] for k in kinds)
    return f"{count} / {_gib(sum(stats[k]['bytes'] for k in kinds))}" if count else "-"


def _as_is_total(result: dict) -> int | None:
    """The per-device total with XLA:CPU's loop hoisting (None where the run did not compile it)."""
    as_is = result.get("xla_cpu_as_is")
    return as_is["memory_bytes_per_device"]["total"] if as_is else None


def memory_table(results: list[dict]) -> str:
    """Per configuration: per-device memory (GiB), collectives (count / GiB per device per step), FLOPs."""
    header = (
        "| size | devices | mesh | remat | argument | output | temp | alias | **total** | XLA:CPU as is | "
        "all-gather | all-reduce | reduce-scatter | other | TFLOP/device | compile (s) |"
    )
    lines = [header, "| --- | ---: | --- | --- |" + " ---: |" * 12]
    other = ("all-to-all", "collective-permute")
    for r in results:
        s = r["setup"]
        if "error" in r:
            lines.append(f"| {s['size']} | {s['devices']} | {s['preset']} | {s['remat']} | {r['error']} |")
            continue
        m, as_is = r["memory_bytes_per_device"], _as_is_total(r)
        cells = [s["size"], s["devices"], _mesh(r), s["remat"]]
        cells += [_gib(m["argument"]), _gib(m["output"]), _gib(m["temp"]), _gib(m["alias"]), f"**{_gib(m['total'])}**"]
        cells += ["-" if as_is is None else _gib(as_is)]
        cells += [_collectives(r, (k,)) for k in ("all-gather", "all-reduce", "reduce-scatter")]
        cells += [_collectives(r, other), f"{r['flops_per_device'] / 1e12:.1f}", f"{r['compile_s']:.1f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def fits(result: dict, total: int | None = None) -> dict[str, bool]:
    """Chip -> whether the configuration's per-device total (or ``total``) fits in the chip's memory."""
    total = result["memory_bytes_per_device"]["total"] if total is None else total
    return {chip: total <= gib * GIB for chip, gib in CHIPS.items()}


def fit_table(results: list[dict]) -> str:
    """Per configuration and chip: yes/no and the share of the chip's memory the compiled step needs; a dagger
    where XLA:CPU as is (loop hoisting on) gives the other verdict."""
    chips = " | ".join(f"{chip} {gib} GiB" for chip, gib in CHIPS.items())
    lines = [
        f"| size | devices | mesh | remat | total (GiB) | {chips} |",
        "| --- | ---: | --- | --- | ---: |" + " --- |" * len(CHIPS),
    ]
    for r in results:
        if "error" in r:
            continue
        s, total, as_is = r["setup"], r["memory_bytes_per_device"]["total"], _as_is_total(r)
        other = fits(r, as_is) if as_is is not None else fits(r)
        cells = [
            f"{'yes' if ok else 'no'} ({total / (CHIPS[chip] * GIB):.0%}){'' if other[chip] == ok else ' †'}"
            for chip, ok in fits(r).items()
        ]
        lines.append(
            f"| {s['size']} | {s['devices']} | {_mesh(r)} | {s['remat']} | {_gib(total)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def summary_table(results: list[dict]) -> str:
    """One line per configuration (the README's table): total per device, the main collectives, FLOPs, and the
    chips it fits (a dagger where XLA:CPU as is gives another verdict)."""
    lines = [
        "| size | devices | mesh | remat | GiB / device (XLA:CPU as is) | all-gather, all-reduce GiB / step "
        "| TFLOP / device | fits |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        if "error" in r:
            continue
        s, total, as_is = r["setup"], r["memory_bytes_per_device"]["total"], _as_is_total(r)
        ok, other = fits(r), fits(r, as_is) if as_is is not None else fits(r)
        chips = [chip + ("†" if other[chip] != ok[chip] else "") for chip in CHIPS if ok[chip]]
        if len(chips) == len(CHIPS):
            daggers = [chip for chip in chips if chip.endswith("†")]
            chips = ["all" + (f" ({', '.join(daggers)})" if daggers else "")]
        chips = chips or ["none"]
        stats = r["collectives_per_step"]
        lines.append(
            f"| {s['size']} | {s['devices']} | {_mesh(r)} | {s['remat']} | {_gib(total)}"
            + ("" if as_is is None else f" ({_gib(as_is)})")
            + f" | {_gib(stats['all-gather']['bytes'])}, {_gib(stats['all-reduce']['bytes'])}"
            + f" | {r['flops_per_device'] / 1e12:.1f} | {', '.join(chips)} |"
        )
    return "\n".join(lines)


def _order(result: dict) -> tuple:
    s = result["setup"]
    rank = lambda value, known: known.index(value) if value in known else -1
    return (rank(s["size"], SIZES), s["size"], s["devices"], s["preset"], rank(s["remat"], REMATS), s["remat"])


def print_tables(results: list[dict]) -> None:
    results = sorted(results, key=_order)
    print(memory_table(results))
    print()
    print(fit_table(results))
    print()
    print(summary_table(results))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.tables:
        print_tables(json.loads(args.tables.read_text())["results"])
        return 0
    if args.child:
        return child(args)
    from t5x_tl.errors import UserError
    from t5x_tl.train.aot import pod_config

    try:  # every configuration checked before any child starts
        for devices in args.devices:
            for setup in setups(args, devices):
                pod_config(setup)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = run_children(args)
    _save(args.out, results)
    print_tables(results)
    if args.out:
        print(f"\nwrote {args.out}")
    expected = len(args.devices) * len(args.sizes) * len(args.presets) * len(args.remat)
    if len(results) < expected:
        print(f"error: {expected - len(results)} of {expected} configurations gave no result", file=sys.stderr)
    return 1 if len(results) < expected or any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
