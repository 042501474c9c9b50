"""Orbax checkpoints of the train state plus a JSON record of what was saved.

Each step folder holds ``state`` (sharded arrays), ``metadata`` (the model's shape signature and the data position
as a batch count) and ``data`` (each host's input iterator state, so resuming never replays the stream; see
:class:`t5x_tl.data.pipeline.TaskBatches`). The metadata is read first, so a workdir holding another model is
refused before any array is touched. Saves are asynchronous; Orbax commits a step atomically (a half-written step is
never listed) and deletes old steps only after a newer one is committed. A committed step that cannot be read (a
damaged disk, a file truncated by hand) is moved aside and the loop falls back to the previous one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from t5x_tl.errors import UserError


class InputPosition(Protocol):
    """A host's input stream whose position a checkpoint holds (one file set per host, in the step's ``data``)."""

    def save_position(self, directory: Path) -> None: ...

    def restore_position(self, directory: Path) -> bool: ...


class InputPositionHandler(ocp.CheckpointHandler):
    """Every host writes (and reads back) its own input position into the step's ``data`` folder."""

    def save(self, directory: epath.Path, args: InputPositionSave) -> None:
        args.stream.save_position(Path(directory))

    def restore(self, directory: epath.Path, args: InputPositionRestore) -> bool:
        return args.stream.restore_position(Path(directory))


@ocp.args.register_with_handler(InputPositionHandler, for_save=True)
@dataclasses.dataclass
class InputPositionSave(ocp.args.CheckpointArgs):
    stream: InputPosition


@ocp.args.register_with_handler(InputPositionHandler, for_restore=True)
@dataclasses.dataclass
class InputPositionRestore(ocp.args.CheckpointArgs):
    stream: InputPosition


ITEMS = ("state", "metadata", "data")


class Checkpointer:
    """Saves every ``every`` steps (and on demand), keeps the newest ``keep`` steps."""

    def __init__(self, directory: Path, every: int, keep: int) -> None:
        self.directory = directory.absolute()
        options = ocp.CheckpointManagerOptions(
            save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(every),
            preservation_policy=ocp.checkpoint_managers.LatestN(keep),
            enable_async_checkpointing=True,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        """Committed steps, newest first."""
        return sorted(self._manager.all_steps(), reverse=True)

    def quarantine(self, step: int) -> Path:
        """Moves an unreadable step aside (``<step>.unreadable``, kept for inspection) so that it is neither
        restored nor overwritten when the run reaches that step again; returns where it went."""
        source = self.directory / str(step)
        target = self.directory / f"{step}.unreadable"
        suffix = 1
        while target.exists():
            target, suffix = self.directory / f"{step}.unreadable.{suffix}", suffix + 1
        if jax.process_index() == 0:  # one process moves it; the others wait until it has
            source.rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"quarantine checkpoint {step}")
        self._manager.reload()
        return target

    def save(
        self, step: int, state: Any, metadata: dict, stream: InputPosition | None = None, force: bool = False
    ) -> bool:
        """Starts an asynchronous save if the policy (or ``force``) asks for one; returns whether it did.

        The input position of ``stream`` is written before this returns (it moves on with the next batch).
        """
        items = {"state": ocp.args.StandardSave(state), "metadata": ocp.args.JsonSave(metadata)}
        if stream is not None:
            items["data"] = InputPositionSave(stream)
        return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

    def metadata(self, step: int) -> dict:
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))
        except (FileNotFoundError, ValueError) as error:
            raise UserError(
                f"checkpoint {self.directory / str(step)} has no readable metadata ({error}); it was not written by "
                "t5x_tl or is damaged: move it away or use a fresh --workdir"
            ) from error
        return restored.metadata

    def restore(self, step: int, target: Any) -> Any:
        """Restores the state onto ``target``'s shapes and shardings (ShapeDtypeStructs)."""
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        return restored.state

    def restore_input_position(self, step: int, stream: InputPosition) -> bool:
        """Puts ``stream`` where it was at ``step``; False when the step holds no position for this host."""
        if not (self.directory / str(step) / "data").is_dir():
            return False
        restored = self._manager.restore(step, args=ocp.args.Composite(data=InputPositionRestore(stream)))
        return restored.data

    def wait(self) -> None:
        """Blocks until every asynchronous save is committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def read_params(directory: Path, step: int | None = None) -> tuple[int, dict, dict]:
    """(step, parameters as host arrays, metadata) of a training checkpoint, without rebuilding its optimizer."""
    manager = ocp.CheckpointManager(directory.absolute(), item_names=ITEMS)
    try:
        step = manager.latest_step() if step is None else step
        if step is None or step not in manager.all_steps():
            raise UserError(f"no checkpoint{'' if step is None else f' at step {step}'} in {directory}")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(), metadata=ocp.args.JsonRestore())
        restored = manager.restore(step, args=args)
    finally:
        manager.close()
    return step, jax.device_get(restored.state["params"]), restored.metadata


def save_params(directory: Path, params: dict) -> None:
    """A parameters-only Orbax checkpoint (e.g. of an imported Hugging Face model)."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory.absolute() / "params", params)


def read_pretrained(path: Path) -> dict:
    """Parameters (host arrays) of a params-only checkpoint (``<path>/params``, as ``convert_hf.py import``
    writes), a training checkpoints folder, or a training work directory (its ``checkpoints/``)."""
    path = pretrained_path(path)
    if (path / "params").is_dir():
        with ocp.StandardCheckpointer() as checkpointer:
            return jax.device_get(checkpointer.restore(path / "params"))
    return read_params(path)[1]


def pretrained_path(path: Path) -> Path:
    """The folder :func:`read_pretrained` reads; UserError, before anything is written, if there is none."""
    path = path.expanduser().absolute()
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if not path.is_dir():
        raise UserError(f"no pretrained checkpoint at {path}: give a work directory, its checkpoints/ or an import")
    return path
