"""Extractive question answering (SQuAD-like) over a corpus-style passage about an entity.

The passage states every attribute of the entity and, for a relation, the relation and the related entity's
attributes, so the answer, the fact's value as the world holds it, occurs in it verbatim among other names and
numbers.
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
    english_phrase,
    facts_of,
    is_relation,
    mention,
    passage,
    value_text,
)

QUESTIONS: Mapping[str, str] = types.MappingProxyType(
    {
        "birth_year": "In what year was {name} born",
        "occupation": "What did {name} work as",
        "home_region": "Which region did {name} come from",
        "trait": "What was {name} known for being",
        "born_in": "Where was {name} born",
        "lives_in": "Where did {name} live",
        "works_for": "Which organisation did {name} work for",
        "married_to": "Who was {name} married to",
        "place_type": "What kind of place is {name}",
        "population": "How many people live in {name}",
        "climate": "What is the climate of {name} like",
        "region": "In which region does {name} lie",
        "founded_year": "When was {name} founded",
        "located_in": "Which place contains {name}",
        "org_type": "What kind of organisation is {name}",
        "field": "What field does {name} work in",
        "employees": "How many people work for {name}",
        "headquartered_in": "Where is {name} based",
        "object_type": "What kind of object is {name}",
        "material": "What is {name} made of",
        "colour": "What colour is {name}",
        "weight_kg": "How many kilograms does {name} weigh",
        "year_made": "When was {name} made",
        "made_by": "Who made {name}",
        "owned_by": "Which organisation owns {name}",
    }
)


def _maker(world: World) -> Maker:
    def make(topic: Entity, rng: random.Random) -> Example:
        facts = facts_of(world, topic)
        key = rng.choice(list(facts))
        question = QUESTIONS[key].format(name=english_phrase(mention(topic)))
        context = passage(world, topic, str(facts[key]) if is_relation(key) else None, rng)
        return {
            "inputs": f"question {question} context {context}",
            "targets": value_text(world, key, facts[key]),
            "key": key,
        }

    return make


FAMILY = Family("qa", _maker)
