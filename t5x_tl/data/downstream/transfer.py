"""A low-resource task with a related high-resource one, for multi-task learning: translation into Synthetic
of sentences about objects (few training examples) and about people, places and organisations (many).

Both share the grammar of Synthetic (verb last, adjectives after the noun, determiners closing the phrase), the
words every kind uses, and the copying of names and numbers; each has fact keys, and so words, of its own (an
object's material and colour, a person's occupation). What the high-resource task teaches is what the
low-resource one needs, as MNLI does for RTE in GLUE. Splits are by entity, as in the whole suite.
"""

from __future__ import annotations

from t5x_tl.data.downstream import translation
from t5x_tl.data.downstream.generators import Family
from t5x_tl.data.downstream.registry import register_family
from t5x_tl.data.tasks.builtin import BuiltinData
from t5x_tl.eval import metrics

LOW_RESOURCE = Family("translation_objects", translation.FAMILY.maker, kinds=("object",))
HIGH_RESOURCE = Family("translation_others", translation.FAMILY.maker, kinds=("person", "place", "organisation"))


def register_transfer_tasks(
    data: BuiltinData, low_resource_examples: int, high_resource_examples: int, eval_examples: int
) -> tuple[str, str]:
    """Registers (once) the low- and high-resource tasks over ``data`` and returns their names."""
    names = []
    for family, train in ((LOW_RESOURCE, low_resource_examples), (HIGH_RESOURCE, high_resource_examples)):
        counts = {"train": train, "validation": eval_examples, "test": eval_examples}
        names.append(register_family(data, family, counts, None, (metrics.bleu,)))
    return names[0], names[1]
