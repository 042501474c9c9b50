"""Host batches whose examples are drawn level by level as a :class:`~.strategies.Curriculum` says.

Each level is a registered SeqIO task named by a template such as ``lte_program_l{length}_n{nesting}``, read
through the model kind's feature converter without packing, one example at a time. The stream's position is
the curriculum's state (with the history of its levels) and the batch count: that goes into every checkpoint,
and :meth:`CurriculumBatches.load_state_dict` skips each level's stream to where it was, so a resumed run draws
exactly the examples the uninterrupted run would have drawn, on every host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import seqio

from t5x_tl.data.curriculum.strategies import Curriculum, Level
from t5x_tl.data.pipeline import Batch, BatchSpec, NumpyStream, converted_dataset


def level_task(template: str, level: Level) -> str:
    return template.format(length=level.length, nesting=level.nesting)


def check_template(template: str, curriculum: Curriculum) -> None:
    """Raises ValueError unless ``template`` names a registered task for every level the curriculum may draw."""
    if "{length}" not in template or (curriculum.target.nesting > 1 and "{nesting}" not in template):
        raise ValueError(
            f"task template {template!r} must contain '{{length}}'"
            + (" and '{nesting}'" if curriculum.target.nesting > 1 else "")
            + f" (the target is {curriculum.target}), e.g. 'lte_program_l{{length}}_n{{nesting}}'"
        )
    registered = set(seqio.TaskRegistry.names())
    missing = [name for level in curriculum.levels() if (name := level_task(template, level)) not in registered]
    if missing:
        raise ValueError(
            f"the curriculum up to {curriculum.target} needs tasks that are not registered: {missing[:5]}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )


class CurriculumBatches(Iterator[Batch]):
    """Endless host batches of ``spec``'s size, lengths and kind, each example at a level the curriculum draws."""

    def __init__(self, curriculum: Curriculum, template: str, spec: BatchSpec):
        check_template(template, curriculum)
        self.curriculum, self.template = curriculum, template
        self._spec = dataclasses.replace(spec, pack=False, shuffle=False, repeat=True, split="train")
        self.batches = 0
        self.consumed: dict[str, int] = {}
        self._streams: dict[str, NumpyStream] = {}

    def spec_for(self, level: Level, split: str = "train") -> BatchSpec:
        """The batch spec of one level's task (what the loop validates the naive level with)."""
        return dataclasses.replace(self._spec, task=level_task(self.template, level), split=split)

    def _next_example(self, level: Level) -> dict[str, np.ndarray]:
        task = level_task(self.template, level)
        if task not in self._streams:
            dataset = converted_dataset(self.spec_for(level)).skip(self.consumed.get(task, 0))
            self._streams[task] = NumpyStream(dataset)
        self.consumed[task] = self.consumed.get(task, 0) + 1
        return next(self._streams[task])

    def _draw(self, batch: int, naive_level: Level | None = None) -> list[Level]:
        rng = np.random.default_rng([self._spec.seed, self._spec.host_index, batch])
        return self.curriculum.draw(rng, self._spec.batch_size, naive_level)

    def __next__(self) -> Batch:
        examples = [self._next_example(level) for level in self._draw(self.batches)]
        self.batches += 1
        return {key: np.stack([example[key] for example in examples]) for key in examples[0]}

    def state_dict(self) -> dict[str, Any]:
        """The same on every host: each host's own position follows from it (see :meth:`load_state_dict`)."""
        return {"curriculum": self.curriculum.state_dict(), "batches": self.batches, "plan": self._plan()}

    def _plan(self) -> dict[str, Any]:
        c = self.curriculum
        return {"strategy": c.strategy, "task": self.template, "target": [c.target.length, c.target.nesting]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues from a saved position: replays this host's draws to find how far each level's stream got.

        The draws of batch ``i`` depend only on the seed, the host, ``i`` and the naive level at ``i``, which
        the curriculum's history records; streams reopen lazily, skipped to those counts.
        """
        if state.get("plan") != self._plan():
            raise ValueError(
                f"the checkpoint's training stream was {state.get('plan') or 'not a curriculum'}, but this config "
                f"asks for {self._plan()}; resume with the config that wrote it, or use a fresh --workdir"
            )
        self.curriculum.load_state_dict(state["curriculum"])
        self.batches = state["batches"]
        self.consumed = {}
        for batch in range(self.batches):
            for level in self._draw(batch, self.curriculum.level_at(batch)):
                task = level_task(self.template, level)
                self.consumed[task] = self.consumed.get(task, 0) + 1
        self._streams.clear()

    def save_position(self, directory: Path) -> None:
        """Nothing to write: the position is :meth:`state_dict` (levels' tasks read Python generators, whose
        iterator state TensorFlow cannot save, so resuming replays each level's examples)."""

    def restore_position(self, directory: Path) -> bool:
        return False

    def close(self) -> None:
        """Finalises the open streams now (their Python generators cannot be finalised at interpreter exit)."""
        self._streams.clear()
