"""Two processes on localhost (2 CPU devices each) train exactly as one process on 4 devices or on 1; a dead
process stops the other; a coordinator nobody runs is one clear error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
JOB = [
    f"--config={REPO / 'configs' / 'learning_to_execute.py'}",
    "--config.curriculum.strategy=none",
    "--config.data.task=lte_copy_l5",
    "--config.data.inputs_length=8",
    "--config.data.targets_length=8",
    "--config.data.batch_size=8",
    "--config.optimizer.schedule=constant",
    "--config.train.eval_every=3",
    "--config.train.eval_batches=2",
    "--config.train.log_every=1",
    "--config.checkpoint.every=3",
    "--config.data.host_sharding=examples",  # the same global batches on any host count
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(workdir: Path, devices: int, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    command = [sys.executable, str(REPO / "scripts" / "train.py"), f"--workdir={workdir}", *JOB, *overrides]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _cluster(workdir: Path, *overrides: str, heartbeat: int = 100) -> list[subprocess.Popen]:
    port = _free_port()
    return [
        _start(workdir, 2, f"--config.distributed.coordinator=127.0.0.1:{port}", "--config.distributed.num_processes=2",
               f"--config.distributed.process_id={i}", f"--config.distributed.heartbeat_s={heartbeat}", *overrides)
        for i in range(2)
    ]  # fmt: skip


def _finish(processes: list[subprocess.Popen], timeout: int = 600) -> None:
    for process in processes:
        _, stderr = process.communicate(timeout=timeout)
        assert process.returncode == 0, stderr[-3000:]


def _curve(workdir: Path, split: str) -> list[float]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["split"] == split]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("one_device")
    _finish([_start(workdir, 1, "--config.train.steps=6")])
    return workdir


@pytest.mark.parametrize("processes", [1, 2])
def test_four_devices_in_one_or_two_processes_match_one_device(one_device, tmp_path, processes):
    workdir = tmp_path / "run"
    if processes == 1:
        _finish([_start(workdir, 4, "--config.train.steps=6")])
    else:
        _finish(_cluster(workdir, "--config.train.steps=6"))
    for split in ("train", "validation"):
        np.testing.assert_allclose(_curve(workdir, split), _curve(one_device, split), rtol=2e-5)
    assert len(_curve(workdir, "train")) == 6
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [3, 6]


def test_a_killed_process_stops_the_other_within_a_bounded_time(tmp_path):
    workdir = tmp_path / "run"
    first, second = _cluster(workdir, "--config.train.steps=100000", heartbeat=5)
    deadline = time.time() + 300
    while time.time() < deadline and len(_curve(workdir, "train") if (workdir / "metrics.jsonl").exists() else []) < 2:
        time.sleep(0.5)
    second.send_signal(signal.SIGKILL)
    start = time.time()
    try:
        first.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        first.kill()
        pytest.fail("the surviving process hung after its peer died")
    assert first.returncode != 0
    assert time.time() - start < 180


def test_a_coordinator_nobody_runs_is_one_clear_error(tmp_path):
    process = _start(
        tmp_path / "run", 1, f"--config.distributed.coordinator=127.0.0.1:{_free_port()}",
        "--config.distributed.num_processes=2", "--config.distributed.process_id=1", "--config.distributed.timeout_s=5",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr[-3000:]
    assert "could not join the distributed run at 127.0.0.1:" in stderr and "check that process 0 runs" in stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
