"""Joining a multi-process (multi-host) run with ``jax.distributed``, before JAX touches a device.

Three ways in, in this order: an explicit coordinator in the config (``distributed.coordinator``, with the
process count and this process's id; what SLURM or a launcher script passes), a cluster JAX detects by
itself (TPU VM pods, SLURM, Open MPI: ``distributed.auto=True``), or a single process. A coordinator that does
not answer within ``distributed.timeout_s`` is one clear error; once running, a process that stops sending
heartbeats for ``distributed.heartbeat_s`` makes the others fail instead of waiting forever.
"""

from __future__ import annotations

import logging

import jax
from ml_collections import ConfigDict

from t5x_tl.errors import UserError

log = logging.getLogger("t5x_tl")


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
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as error:
        where = d.coordinator or "the coordinator the cluster environment names"
        raise UserError(
            f"could not join the distributed run at {where} within {d.timeout_s} s "
            f"({str(error).splitlines()[0][:200]}); check that process 0 runs and the address and port are "
            "reachable from every host"
        ) from error
    log.info(
        "Process %d of %d: %d local devices, %d in all",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
