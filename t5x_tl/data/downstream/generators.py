"""What every downstream generator shares: entity splits, seeded draws, the world's facts and their sentences.

A fact sentence is a `Clause` (subject, verb, preposition, complement) rather than a string, so that one fact
renders both as English here and as the second language in `translation`. Every example is about one topic
entity, and each split draws its topics from its own entities, so no evaluation example is about an entity that
a training example was about. All draws come from `random.Random`s seeded by stable hashes, never `hash()`.

Examples use only characters the corpus has, and so the SentencePiece vocabulary trained on it: T5's task
prefixes ("question: ...") lose their colons and questions their question marks, which would read as unknown.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import random
import types
from collections.abc import Callable, Mapping

from t5x_tl.data.corpus.documents import render_document
from t5x_tl.data.corpus.world import KINDS, SYMMETRIC_PREDICATES, Entity, Relation, World

Example = dict[str, str]
Maker = Callable[[Entity, random.Random], Example]
Value = str | int

SPLITS = ("train", "validation", "test")
_HELD_OUT_SHARE = 0.1  # of each entity kind, for validation and again for test

# Relations that give an entity one value, as fact keys: (predicate, entity is the relation's object) -> key.
RELATION_KEYS: Mapping[tuple[str, bool], str] = types.MappingProxyType(
    {
        ("born_in", False): "born_in",
        ("lives_in", False): "lives_in",
        ("works_for", False): "works_for",
        ("married_to", False): "married_to",
        ("headquartered_in", False): "headquartered_in",
        ("located_in", False): "located_in",
        ("created", True): "made_by",
        ("owns", True): "owned_by",
    }
)
_RELATION_FACTS = frozenset(RELATION_KEYS.values())

# Fact key -> (verb, preposition, complement shape, the shape's noun). Shapes: "name" the value kept as it is
# (years, regions), "word" the value as common words, "a" the same after an indefinite article, "entity" the
# other entity, "count" the value as a number of the noun, "quality" the value as an adjective of the noun.
_STATEMENTS: Mapping[str, tuple[str, str, str, str]] = types.MappingProxyType(
    {
        "birth_year": ("was born", "in", "name", ""),
        "occupation": ("worked", "as", "a", ""),
        "home_region": ("came", "from", "name", ""),
        "trait": ("was", "", "word", ""),
        "born_in": ("was born", "in", "entity", ""),
        "lives_in": ("lived", "in", "entity", ""),
        "works_for": ("worked", "for", "entity", ""),
        "married_to": ("was married", "to", "entity", ""),
        "place_type": ("is", "", "a", ""),
        "population": ("has", "", "count", "inhabitant"),
        "climate": ("has", "", "quality", "climate"),
        "region": ("lies", "in", "name", ""),
        "founded_year": ("was founded", "in", "name", ""),
        "located_in": ("lies", "within", "entity", ""),
        "org_type": ("is", "", "a", ""),
        "field": ("works", "in", "word", ""),
        "employees": ("employs", "", "count", "worker"),
        "headquartered_in": ("is based", "in", "entity", ""),
        "object_type": ("is", "", "a", ""),
        "material": ("is made", "of", "word", ""),
        "colour": ("is", "", "word", ""),
        "weight_kg": ("weighs", "", "count", "kilogram"),
        "year_made": ("was made", "in", "name", ""),
        "made_by": ("was made", "by", "entity", ""),
        "owned_by": ("belongs", "to", "entity", ""),
    }
)


@dataclasses.dataclass(frozen=True)
class Phrase:
    """A noun phrase; a proper one (a name or number) is never translated."""

    head: tuple[str, ...]
    adjectives: tuple[str, ...] = ()
    determiner: str = ""  # "a", "the", a number, or none
    plural: bool = False
    proper: bool = False


@dataclasses.dataclass(frozen=True)
class Clause:
    """`subject verb [preposition] complement`, the shape of every fact sentence."""

    subject: Phrase
    verb: tuple[str, ...]
    preposition: str
    complement: Phrase


@dataclasses.dataclass(frozen=True)
class Family:
    """A task family: its name, which seeds its draws, how it builds its example maker for a world, and the
    entity kinds its examples are about (a domain of its own, e.g. only objects)."""

    name: str
    maker: Callable[[World], Maker]
    kinds: tuple[str, ...] = KINDS

    def examples(self, world: World, seed: int, split: str, count: int) -> list[Example]:
        """`count` examples about the split's entities; the i-th depends only on (world, seed, name, split, i)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        topics = [i for i in entity_splits(world, seed)[split] if world.entity(i).kind in self.kinds]
        if not topics:
            raise ValueError(f"the world has no {'/'.join(self.kinds)} for the {split!r} split; generate more entities")
        make = self.maker(world)
        examples = []
        for i in range(count):
            rng = stable_rng(seed, self.name, split, i)
            topic = world.entity(rng.choice(topics))
            examples.append({**make(topic, rng), "entity": topic.id})
        return examples


def stable_rng(*parts: object) -> random.Random:
    """A generator seeded by `parts`, the same in every process."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def entity_splits(world: World, seed: int) -> dict[str, tuple[str, ...]]:
    """Entity ids per split: within each kind a seeded ranking puts a tenth in validation and a tenth in test.

    Ranking within kinds gives every split entities of every kind (kinds with fewer than three stay in train).
    """
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    for kind in KINDS:
        ranked = sorted((e.id for e in world.by_kind(kind)), key=lambda i: (stable_rng(seed, "split", i).random(), i))
        held = max(1, round(len(ranked) * _HELD_OUT_SHARE)) if len(ranked) >= len(SPLITS) else 0
        splits["validation"] += ranked[:held]
        splits["test"] += ranked[held : 2 * held]
        splits["train"] += ranked[2 * held :]
    return {split: tuple(ids) for split, ids in splits.items()}


def other(rel: Relation, entity_id: str) -> str:
    return rel.object if rel.subject == entity_id else rel.subject


def facts_of(world: World, entity: Entity) -> dict[str, Value]:
    """The entity's single-valued facts: its attributes, and for relations the other entity's id.

    A relation key the entity holds twice is left out: it would not give the entity one value.
    """
    facts: dict[str, Value] = {k: v for k, v in entity.attributes.items() if k != "pronoun"}
    related: dict[str, list[str]] = collections.defaultdict(list)
    for rel in world.relations_of(entity.id):
        inverse = rel.object == entity.id and rel.predicate not in SYMMETRIC_PREDICATES
        key = RELATION_KEYS.get((rel.predicate, inverse))
        if key:
            related[key].append(other(rel, entity.id))
    facts.update({key: ids[0] for key, ids in related.items() if len(ids) == 1})
    return facts


def is_relation(key: str) -> bool:
    return key in _RELATION_FACTS


def value_text(world: World, key: str, value: Value) -> str:
    """How a fact's value reads: the other entity's name for relations, else the value itself."""
    return world.entity(str(value)).name if is_relation(key) else str(value)


def mention(entity: Entity) -> Phrase:
    """How an entity is named: organisations and objects take "the", as in the corpus."""
    determiner = "the" if entity.kind in ("organisation", "object") else ""
    return Phrase(tuple(entity.name.split()), determiner=determiner, proper=True)


def statement(world: World, entity: Entity, key: str, value: Value) -> Clause:
    """The fact `key = value` about `entity`, true or not, in the fixed style."""
    verb, preposition, shape, noun = _STATEMENTS[key]
    return Clause(mention(entity), tuple(verb.split()), preposition, _complement(world, value, shape, noun))


def _complement(world: World, value: Value, shape: str, noun: str) -> Phrase:
    if shape == "entity":
        return mention(world.entity(str(value)))
    if shape == "count":
        return Phrase((noun,), determiner=str(value), plural=value != 1)
    words = tuple(str(value).split())
    if shape == "quality":
        return Phrase((noun,), adjectives=words, determiner="a")
    return Phrase(words, determiner="a" if shape == "a" else "", proper=shape == "name")


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _indefinite(word: str) -> str:
    return "an" if word[0] in "aeiou" and not word.startswith("uni") else "a"


def english_phrase(phrase: Phrase) -> str:
    words = [*phrase.adjectives, *phrase.head[:-1], phrase.head[-1] + ("s" if phrase.plural else "")]
    determiner = _indefinite(words[0]) if phrase.determiner == "a" else phrase.determiner
    return " ".join([determiner, *words] if determiner else words)


def predicate(clause: Clause) -> str:
    """The clause without its subject ("worked as a painter"), so several can share one subject."""
    preposition = [clause.preposition] if clause.preposition else []
    return " ".join([*clause.verb, *preposition, english_phrase(clause.complement)])


def english(clause: Clause) -> str:
    return capitalise(f"{english_phrase(clause.subject)} {predicate(clause)}.")


def coordinate(items: list[str]) -> str:
    """Joins items as prose does: "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def passage(world: World, topic: Entity, neighbour: str | None, rng: random.Random) -> str:
    """A corpus-style article about `topic` and one neighbour: `neighbour`, or one drawn from its relations.

    It is the corpus renderer run on the sub-world of the two and the relations between them: true of `world`,
    stating every attribute of both and each of those relations, with other names and numbers in sight beside
    any one asked for, and short enough for a model input (at most about 230 tokens of the default vocabulary;
    a second neighbour would pass 300). Paragraph breaks become spaces, as model inputs are one line.
    """
    keep = {topic.id}
    if neighbour is not None:
        keep.add(neighbour)
    elif related := sorted({other(rel, topic.id) for rel in world.relations_of(topic.id)}):
        keep.add(rng.choice(related))
    entities = tuple(world.entity(i) for i in sorted(keep))
    relations = tuple(r for r in world.relations_of(topic.id) if r.subject in keep and r.object in keep)
    return " ".join(render_document(World(world.seed, entities, relations), topic.id, rng).split())
