"""Sentence-pair inference (MNLI-like): does a premise of world facts entail, contradict or leave open a hypothesis?

The premise states one to three true facts about an entity. An entailed hypothesis restates one of them; a
contradicting one gives one of them another value, which contradicts because every fact key is single-valued;
a neutral one states a fact on a key the premise leaves out, true or false with even odds. So the label follows
from the premise alone, and the premise from the world.
"""

from __future__ import annotations

import collections
import random

from t5x_tl.data.corpus.world import Entity, World
from t5x_tl.data.downstream.generators import Example, Family, Maker, Value, english, facts_of, statement

LABELS = ("entailment", "neutral", "contradiction")
_MAX_PREMISE = 3


def _value_pools(world: World) -> dict[tuple[str, str], list[Value]]:
    """Every value each fact key takes among the entities of each kind: where false values are drawn from."""
    pools: dict[tuple[str, str], set[Value]] = collections.defaultdict(set)
    for entity in world.entities:
        for key, value in facts_of(world, entity).items():
            pools[entity.kind, key].add(value)
    return {group: sorted(values) for group, values in pools.items()}


def _maker(world: World) -> Maker:
    pools = _value_pools(world)

    def make(topic: Entity, rng: random.Random) -> Example:
        facts = facts_of(world, topic)
        false = {key: [v for v in pools[topic.kind, key] if v not in (value, topic.id)] for key, value in facts.items()}
        label = rng.choice([lab for lab in LABELS if lab != "contradiction" or any(false.values())])
        key = rng.choice([k for k in facts if label != "contradiction" or false[k]])
        rest = [k for k in facts if k != key]
        premise = rng.sample(rest, min(len(rest), rng.randint(1, _MAX_PREMISE) - (label != "neutral")))
        if label != "neutral":
            premise.insert(rng.randint(0, len(premise)), key)
        true = label == "entailment" or (label == "neutral" and (rng.random() < 0.5 or not false[key]))
        value = facts[key] if true else rng.choice(false[key])
        sentences = " ".join(english(statement(world, topic, k, facts[k])) for k in premise)
        hypothesis = english(statement(world, topic, key, value))
        return {"inputs": f"nli premise {sentences} hypothesis {hypothesis}", "targets": label, "key": key}

    return make


FAMILY = Family("pairs", _maker)
