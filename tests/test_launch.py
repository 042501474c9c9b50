"""The launchers print exactly the command every worker runs (the dry run runs no gcloud or sbatch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "launch.py"
TRAIN = ["--", "--config=configs/pretrain_span_corruption.py", "--workdir=/mnt/run", "--config.train.steps=10"]


def _launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_tpu_pod_runs_the_same_command_on_every_worker():
    result = _launch("tpu", "--dry_run", "--tpu=pod", "--zone=z", "--project=p", "--repo=/opt/t5x_tl", *TRAIN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "gcloud compute tpus tpu-vm ssh pod --zone=z --project=p --worker=all '--command=cd /opt/t5x_tl && python "
        "scripts/train.py --config=configs/pretrain_span_corruption.py --workdir=/mnt/run --config.train.steps=10 "
        "--config.distributed.auto=True'"
    )


def test_slurm_batch_script_starts_one_process_per_node():
    result = _launch("slurm", "--dry_run", "--nodes=4", "--gpus_per_node=8", "--partition=gpu", *TRAIN)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert {"#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --partition=gpu"} <= set(lines)
    assert lines[-1].startswith("srun bash -c 'cd . && python scripts/train.py --config=")
    assert lines[-1].endswith("--config.train.steps=10 --config.distributed.auto=True'")


def test_a_launch_without_the_training_command_is_refused():
    result = _launch("slurm", "--dry_run", "--nodes=2", "--", "--workdir=/mnt/run")
    assert result.returncode == 2 and "at least --config=... and --workdir=..." in result.stderr


def test_a_study_launches_its_own_script_without_the_train_flag():
    study = ["--", "--config=configs/objective_study_c4.py", "--study_dir=/mnt/study"]
    result = _launch("tpu", "--dry_run", "--tpu=pod", "--zone=z", "--project=p", "--script=scripts/objective_study.py",
                     *study)  # fmt: skip
    assert result.returncode == 0
    assert "python scripts/objective_study.py --config=configs/objective_study_c4.py --study_dir=/mnt/study" in (
        result.stdout
    )
    assert "distributed.auto" not in result.stdout
    refused = _launch("slurm", "--dry_run", "--nodes=2", "--script=scripts/objective_study.py", "--",
                      "--config=configs/objective_study_c4.py", "--workdir=/mnt/run")  # fmt: skip
    assert refused.returncode == 2 and "at least --config=... and --study_dir=..." in refused.stderr
