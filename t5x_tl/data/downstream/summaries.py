"""Summarisation (CNN/DM-like): a corpus-style passage about an entity -> its lead facts in one fixed-style sentence.

The lead facts are the few a reader would want first about each kind of entity, with at most one relation, as
a passage states the relations of one neighbour only. The passage states them among the entity's other
attributes and the neighbour's.
"""

from __future__ import annotations

import random
import types
from collections.abc import Mapping

from t5x_tl.data.corpus.world import Entity, World
from t5x_tl.data.downstream.generators import (
    Example,
    Family,
    Maker,
    capitalise,
    coordinate,
    english_phrase,
    facts_of,
    is_relation,
    mention,
    passage,
    predicate,
    statement,
)

LEAD_FACTS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "person": ("occupation", "birth_year", "home_region", "works_for"),
        "place": ("place_type", "region", "population", "located_in"),
        "organisation": ("org_type", "field", "founded_year", "headquartered_in"),
        "object": ("object_type", "material", "year_made", "made_by"),
    }
)


def summary(world: World, topic: Entity) -> str:
    """The topic's lead facts as one sentence: "X worked as a painter, was born in 1801 and came from Y."""
    facts = facts_of(world, topic)
    clauses = [statement(world, topic, key, facts[key]) for key in LEAD_FACTS[topic.kind] if key in facts]
    return capitalise(f"{english_phrase(mention(topic))} {coordinate([predicate(c) for c in clauses])}.")


def _maker(world: World) -> Maker:
    def make(topic: Entity, rng: random.Random) -> Example:
        facts = facts_of(world, topic)
        related = [str(facts[key]) for key in LEAD_FACTS[topic.kind] if key in facts and is_relation(key)]
        document = passage(world, topic, related[0] if related else None, rng)
        return {"inputs": f"summarize {document}", "targets": summary(world, topic)}

    return make


FAMILY = Family("summaries", _maker)
