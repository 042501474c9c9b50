"""Input work per host on 1, 2 and 4 hosts: each host preprocessing the whole stream and keeping its rows
(``data.host_sharding=examples``) against each host reading only its shard of the source (``source``, the
default on more than one process).

Every host is a local process reading the main job's stream (built-in corpus, span corruption at inputs 128,
packed) at its share of a global batch of ``--global_batch`` rows, all hosts at once. Per host: rows per second
and CPU seconds (user + system, every thread of the process) over ``--batches`` batches after the first.
Total rows per second can grow with the host count only on a machine with a core per host and more; on fewer
cores the figure that carries over to a pod is the CPU each host spends per global row, which source
sharding divides by the host count and example sharding does not.

    python scripts/bench_host_input.py --out=/tmp/bench_host_input.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def host(index: int, hosts: int, sharding: str, global_batch: int, batches: int) -> dict[str, float]:
    """One host's rows per second and CPU seconds over ``batches`` batches after its first."""
    from t5x_tl.config import base_config
    from t5x_tl.data.pipeline import BatchSpec, hide_accelerators_from_tensorflow, numpy_batches
    from t5x_tl.train.job import resolve_task

    hide_accelerators_from_tensorflow()
    cfg = base_config()
    cfg.data.inputs_length = 128
    task, targets_length = resolve_task(cfg)
    spec = BatchSpec(
        task.name, "train", 128, targets_length, global_batch // hosts, cfg.seed,
        host_index=index, num_hosts=hosts, host_sharding=sharding,
    )  # fmt: skip
    stream = numpy_batches(spec)
    next(stream)  # builds the pipeline and fills its buffers
    start, cpu = time.perf_counter(), _cpu_seconds()
    rows = sum(len(next(stream)["encoder_input_tokens"]) for _ in range(batches))
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {"rows": rows, "seconds": seconds, "cpu_s": cpu}


def run_hosts(hosts: int, sharding: str, global_batch: int, batches: int) -> list[dict[str, float]]:
    """``hosts`` local processes at once, one per host index."""
    command = [sys.executable, __file__, "--host_of", str(hosts), "--sharding", sharding,
               "--global_batch", str(global_batch), "--batches", str(batches)]  # fmt: skip
    processes = [
        subprocess.Popen([*command, "--host", str(i)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for i in range(hosts)
    ]
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode:
            raise RuntimeError(f"a host process failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--global_batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--host", type=int, help=argparse.SUPPRESS)  # a host process of run_hosts
    parser.add_argument("--host_of", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sharding", default="source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host is not None:
        print(json.dumps(host(args.host, args.host_of, args.sharding, args.global_batch, args.batches)))
        return
    rows = []
    header = ("sharding", "hosts", "rows/s per host", "rows/s total", "host CPU s per 1k global rows")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (9, 5, 16, 13, 30), strict=True)))
    for sharding in ("examples", "source"):
        for hosts in args.hosts:
            results = run_hosts(hosts, sharding, args.global_batch, args.batches)
            global_rows = args.global_batch * args.batches
            per_host = sum(r["rows"] / r["seconds"] for r in results) / hosts
            total = global_rows / max(r["seconds"] for r in results)
            cpu_per_1k = sum(r["cpu_s"] for r in results) / hosts / global_rows * 1000
            rows.append({"sharding": sharding, "hosts": hosts, "rows_per_s_per_host": per_host,
                         "rows_per_s_total": total, "host_cpu_s_per_1k_global_rows": cpu_per_1k})  # fmt: skip
            print(f"{sharding:>9} {hosts:>5} {per_host:>16.1f} {total:>13.1f} {cpu_per_1k:>30.2f}")
    for hosts in args.hosts:
        by = {r["sharding"]: r for r in rows if r["hosts"] == hosts}
        ratio = by["examples"]["host_cpu_s_per_1k_global_rows"] / by["source"]["host_cpu_s_per_1k_global_rows"]
        print(f"{hosts} hosts: source sharding spends {ratio:.2f}x less CPU per host than example sharding")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
