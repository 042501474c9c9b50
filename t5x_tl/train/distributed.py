"""Joining a multi-process (multi-host) run with ``jax.distributed``, before JAX touches a device.

Three ways in, in this order: an explicit coordinator in the config (``distributed.coordinator``, with the
process count and this process's id; what SLURM or a launcher script passes), a cluster JAX detects by
itself (TPU VM pods, SLURM, Open MPI: ``distributed.auto=True``), or a single process. A coordinator that does
not answer within ``distributed.timeout_s`` is one clear error; once running, a process that stops sending
heartbeats for ``distributed.heartbeat_s`` makes JAX terminate the others ("another task died") instead of
letting them wait forever.
"""

from __future__ import annotations

import logging
import socket
import time

import jax
from ml_collections import ConfigDict

from t5x_tl.errors import UserError

log = logging.getLogger("t5x_tl")


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Polls ``host:port`` until it accepts a connection. JAX aborts the process when its coordinator does not
    answer, so this is where a wrong address or a missing process 0 gets a readable message."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise UserError(
                    f"could not join the distributed run at {address} within {timeout_s} s "
                    f"({error.strerror or error}); check that process 0 runs and the address and port are reachable "
                    "from every host"
                ) from error
            time.sleep(0.5)


def initialize(cfg: ConfigDict) -> None:
    """Joins the run ``cfg.distributed`` describes; a no-op for a single process or when already joined."""
    d = cfg.distributed
    if not d.coordinator and not d.auto:
        return
    if jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk through gloo
    kwargs = dict(initialization_timeout=d.timeout_s, heartbeat_timeout_seconds=d.heartbeat_s)
    if d.coordinator:
        kwargs.update(coordinator_address=d.coordinator, num_processes=d.num_processes, process_id=d.process_id)
    if d.coordinator and d.process_id != 0:
        _wait_for_coordinator(d.coordinator, d.timeout_s)
    jax.distributed.initialize(**kwargs)
    log.info(
        "Process %d of %d: %d local devices, %d in all",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
