"""Launch the same training command on every worker of a TPU VM pod or every node of a SLURM GPU cluster.

Each process joins the run through ``jax.distributed`` (``--config.distributed.auto=True``: JAX reads the pod's
or SLURM's environment), feeds its share of every global batch, and writes to the same work directory, which
must be storage every worker mounts at the same path (a network file system, or a bucket through gcsfuse).

    python scripts/launch.py tpu --tpu=my-v5p-64 --zone=us-east5-a --project=my-project --repo=~/t5x_tl -- \\
      --config=configs/pretrain_span_corruption.py --workdir=/mnt/bucket/run --config.model.size=base
    python scripts/launch.py slurm --nodes=4 --gpus_per_node=8 --partition=gpu --repo=$PWD -- \\
      --config=configs/pretrain_span_corruption.py --workdir=/shared/run

``--script=scripts/objective_study.py`` launches a whole study instead (its job configs set
``distributed.auto``; give ``--study_dir`` instead of ``--workdir``). ``--dry_run`` prints the command (and, for
SLURM, the batch script) instead of running it.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile

JOIN = "--config.distributed.auto=True"
TRAIN_SCRIPT = "scripts/train.py"


def train_command(repo: str, train_args: list[str], script: str = TRAIN_SCRIPT) -> str:
    join = f" {JOIN}" if script == TRAIN_SCRIPT else ""  # a study's job configs say how to join
    return f"cd {repo} && python {script} {shlex.join(train_args)}{join}"


def tpu_command(args: argparse.Namespace, train_args: list[str]) -> list[str]:
    """``gcloud ... tpu-vm ssh --worker=all``: the same command on every worker of the pod at once."""
    return [
        "gcloud", "compute", "tpus", "tpu-vm", "ssh", args.tpu, f"--zone={args.zone}", f"--project={args.project}",
        "--worker=all", f"--command={train_command(args.repo, train_args, args.script)}",
    ]  # fmt: skip


def slurm_script(args: argparse.Namespace, train_args: list[str]) -> str:
    """One task per node holding all its GPUs; ``srun`` starts them, JAX reads the SLURM environment."""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={args.job_name}",
        f"#SBATCH --nodes={args.nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={args.gpus_per_node}",
        f"#SBATCH --time={args.time}",
        "#SBATCH --output=%x-%j.out",
        *([f"#SBATCH --partition={args.partition}"] if args.partition else []),
        "set -euo pipefail",
        f"srun bash -c {shlex.quote(train_command(args.repo, train_args, args.script))}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry_run", action="store_true")
    common.add_argument("--repo", default=".", help="the checkout on the workers")
    common.add_argument("--script", default=TRAIN_SCRIPT, help="the entry point, e.g. scripts/objective_study.py")
    where = parser.add_subparsers(dest="where", required=True)
    tpu = where.add_parser("tpu", parents=[common])
    for name in ("--tpu", "--zone", "--project"):
        tpu.add_argument(name, required=True)
    slurm = where.add_parser("slurm", parents=[common])
    slurm.add_argument("--nodes", type=int, required=True)
    slurm.add_argument("--gpus_per_node", type=int, default=8)
    slurm.add_argument("--partition", default="")
    slurm.add_argument("--time", default="24:00:00")
    slurm.add_argument("--job_name", default="t5x_tl")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, train_args = parser.parse_args(argv[:split]), argv[split + 1 :]
    where_to = "--workdir" if args.script == TRAIN_SCRIPT else "--study_dir"
    if not any(a.startswith("--config=") for a in train_args) or not any(
        a.startswith(f"{where_to}=") for a in train_args
    ):
        parser.error(f"give the command's arguments after --: at least --config=... and {where_to}=...")
    if args.where == "tpu":
        command = tpu_command(args, train_args)
        print(shlex.join(command))
        if not args.dry_run:
            sys.exit(subprocess.run(command).returncode)
        return
    script = slurm_script(args, train_args)
    print(script, end="")
    if not args.dry_run:
        with tempfile.NamedTemporaryFile("w", suffix=".sbatch", delete=False) as handle:
            handle.write(script)
        sys.exit(subprocess.run(["sbatch", handle.name]).returncode)


if __name__ == "__main__":
    main()
