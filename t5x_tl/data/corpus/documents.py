"""The built-in pretraining corpus: encyclopedic articles rendered from a synthetic world.

Each document is about one topic entity and then wanders to related entities, so
that facts stated in the text are checkable against the world and downstream tasks
can be derived from the same data. Generation is deterministic for a `CorpusSpec`
(byte for byte, across processes): every random draw comes from a `random.Random`
seeded by a stable hash, never from Python's per-process `hash()`.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import random
import string
from collections.abc import Sequence

from t5x_tl.data.corpus import templates
from t5x_tl.data.corpus.world import (
    SYMMETRIC_PREDICATES,
    Entity,
    Relation,
    World,
    generate_world,
)

# Bump when the rendering or world generation changes, so cached corpora are rebuilt.
GENERATOR_VERSION = 1
_SPEC_LIMITS = {
    "seed": (0, 2**63 - 1),
    "num_entities": (4, 1_000_000),
    "num_train_documents": (1, 10_000_000),
    "num_validation_documents": (0, 10_000_000),
}
_MIN_WORDS, _MAX_WORDS = 250, 3000  # target length range; drawn log-uniformly
_MAX_LIST = 5  # most entities named in one list sentence
_MAX_DEPTH = 3  # passages reach neighbours of neighbours of neighbours at most
_PRONOUNS = {
    "he": ("he", "him", "his"),
    "she": ("she", "her", "her"),
    "they": ("they", "them", "their"),
    "it": ("it", "it", "its"),
}
_SPOUSE = {"he": "husband", "she": "wife", "they": "spouse"}
_VERBS = {False: ("is", "was", "has"), True: ("are", "were", "have")}
_TYPE_ATTRIBUTE = {
    "person": "occupation",
    "place": "place_type",
    "organisation": "org_type",
    "object": "object_type",
}


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """Everything that determines a corpus; its fingerprint names cache directories."""

    seed: int = 0
    num_entities: int = 400
    num_train_documents: int = 2000
    num_validation_documents: int = 100

    def validate(self) -> None:
        for name, (low, high) in _SPEC_LIMITS.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"CorpusSpec.{name} must be an integer in [{low}, {high}]; got {value!r}")

    def fingerprint(self) -> str:
        fields = dict(dataclasses.asdict(self), version=GENERATOR_VERSION)
        payload = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Document:
    """One rendered article; `entities` lists the ids it mentions, topic first."""

    id: str
    topic: str
    entities: tuple[str, ...]
    text: str


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _attribute_names(template: str) -> frozenset[str]:
    return frozenset(f.removeprefix("a_") for f in _fields(template))


# Attributes an opening states, so they are not repeated right after it.
_OPENING_ATTRIBUTES = {t: _attribute_names(t) for ts in templates.OPENINGS.values() for t in ts}


def _nameable(pool: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in pool if _fields(t) & {"s", "name"})


# Templates usable where the entity must be named (no bare pronoun opening).
_NAMED_POOLS = {
    pool: _nameable(pool)
    for pool in [*templates.ATTRIBUTES.values(), templates.PASSAGE_INTROS]
    + [p for table in templates.RELATIONS.values() for p in table.values()]
}


def _article(word: str) -> str:
    lower = word.lower()
    if lower.startswith(("uni", "use", "eu", "one")) or lower[0] not in "aeiou":
        return f"a {word}"
    return f"an {word}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _mention(entity: Entity) -> str:
    return f"the {entity.name}" if entity.kind in ("organisation", "object") else entity.name


def _pronoun(entity: Entity) -> str:
    return str(entity.attributes["pronoun"]) if entity.kind == "person" else "it"


def _other(rel: Relation, entity_id: str) -> str:
    return rel.object if rel.subject == entity_id else rel.subject


def _role(rel: Relation, entity_id: str) -> str:
    return "fwd" if rel.subject == entity_id or rel.predicate in SYMMETRIC_PREDICATES else "inv"


def _capitalise(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


class _Renderer:
    """Accumulates one document: paragraphs, a word count and the entities mentioned."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.words = 0
        self.mentioned: dict[str, None] = {}
        self._paragraphs: list[str] = []
        self._current: list[str] = []
        self.name_next = False
        self._contexts: dict[str, dict[str, str | int]] = {}

    def _context(self, entity: Entity) -> dict[str, str | int]:
        """Fields that depend only on the entity, built once per document."""
        if entity.id not in self._contexts:
            ctx: dict[str, str | int] = dict(entity.attributes)
            for key, value in entity.attributes.items():
                if isinstance(value, str):
                    ctx[f"a_{key}"] = _article(value)
            _, ctx["obj"], ctx["poss"] = _PRONOUNS[_pronoun(entity)]
            ctx["name"] = _mention(entity)
            if "weight_kg" in ctx:
                ctx["kilograms"] = "kilogram" if ctx["weight_kg"] == 1 else "kilograms"
            self._contexts[entity.id] = ctx
        return self._contexts[entity.id]

    def _reference(self, entity: Entity, template: str, named: bool, describe: bool) -> tuple[str, bool]:
        """How {s} refers to the entity, and whether the verb must be plural."""
        draw = self.rng.random()
        if not named and template.startswith("{s}") and draw < 0.5:
            subject = _PRONOUNS[_pronoun(entity)][0]
            return subject, subject == "they"
        if not named and describe and draw < 0.7:
            return f"the {entity.attributes[_TYPE_ATTRIBUTE[entity.kind]]}", False
        return _mention(entity), False

    def say(
        self,
        pool: tuple[str, ...],
        entity: Entity,
        others: Sequence[Entity] = (),
        describe: bool = True,
        **fields: str | int,
    ) -> None:
        """Renders one template from `pool` about `entity` and appends it.

        `describe=False` stops {s} becoming "the <type>", for sentences stating the type.
        """
        named = self.name_next or not self._current
        template = self.rng.choice(_NAMED_POOLS.get(pool, pool) if named else pool)
        ctx = dict(self._context(entity), **fields)
        ctx["s"], plural = self._reference(entity, template, named, describe)
        ctx["be"], ctx["was"], ctx["has"] = _VERBS[plural]
        # Connectives read badly before sentences that open with an adverbial phrase.
        self._append(template.format_map(ctx), template.startswith(("{", "the ")))
        self.mentioned[entity.id] = None
        own = _pronoun(entity)
        self.name_next = False
        for other in others:
            self.mentioned[other.id] = None
            self.name_next = self.name_next or _pronoun(other) == own

    def _append(self, body: str, linkable: bool) -> None:
        self.words += body.count(" ") + 1
        current, draw = self._current, self.rng.random()
        if not (current and linkable):
            current.append(body)
        elif draw < 0.08 and ", and " not in current[-1]:
            current[-1] = f"{current[-1][:-1]}, and {body}"
        elif draw < 0.3:
            current.append(self.rng.choice(templates.CONNECTIVES) + body)
        else:
            current.append(body)

    def paragraph_break(self) -> None:
        if self._current:
            self._paragraphs.append(" ".join(_capitalise(s) for s in self._current))
            self._current = []

    def text(self) -> str:
        self.paragraph_break()
        return "\n\n".join(self._paragraphs)

    def opening(self, entity: Entity) -> frozenset[str]:
        """States the entity's opening sentence; returns the attributes it covered."""
        template = self.rng.choice(templates.OPENINGS[entity.kind])
        self.say((template,), entity)
        return _OPENING_ATTRIBUTES[template]

    def attributes(self, entity: Entity, names: list[str]) -> None:
        for name in names:
            value = entity.attributes[name]
            a_value = _article(value) if isinstance(value, str) else value
            describe = name != _TYPE_ATTRIBUTE[entity.kind]
            self.say(templates.ATTRIBUTES[name], entity, (), describe, v=value, a_v=a_value)

    def _relation_fields(self, rel: Relation, entity: Entity) -> dict[str, str | int]:
        other = self.world.entity(_other(rel, entity.id))
        fields: dict[str, str | int] = {"o": _mention(other)}
        if rel.predicate in ("founded", "created"):
            maker, made = self.world.entity(rel.subject), self.world.entity(rel.object)
            year = int(made.attributes["founded_year" if made.kind == "organisation" else "year_made"])
            fields["year"] = year
            fields["age"] = year - int(maker.attributes["birth_year"])
        elif rel.predicate == "married_to":
            fields["spouse"] = _SPOUSE[_pronoun(other)]
        return fields

    def relation(self, entity: Entity, rel: Relation) -> None:
        """One sentence stating `rel` from the point of view of `entity`."""
        other = self.world.entity(_other(rel, entity.id))
        pool = templates.RELATIONS[rel.predicate][_role(rel, entity.id)]
        self.say(pool, entity, (other,), **self._relation_fields(rel, entity))

    def relation_group(self, entity: Entity, rels: list[Relation]) -> None:
        """States same-predicate, same-role relations, as a list where a template allows."""
        table = templates.RELATIONS[rels[0].predicate]
        many = table.get(_role(rels[0], entity.id) + "_many")
        if many is None or len(rels) == 1:
            for rel in rels[:_MAX_LIST]:
                self.relation(entity, rel)
            return
        picked = sorted(self.rng.sample(range(len(rels)), min(len(rels), _MAX_LIST)))
        others = [self.world.entity(_other(rels[i], entity.id)) for i in picked]
        fields = self._relation_fields(rels[0], entity)
        fields["olist"] = _join([_mention(o) for o in others])
        self.say(many, entity, others, **fields)

    def groups(self, entity: Entity, stated: Relation | None = None) -> list[list[Relation]]:
        """The entity's relations grouped by predicate and role, in random order.

        A group holding only the already `stated` relation is left out; a larger one
        keeps it, so that e.g. co-founders are listed together rather than apart.
        """
        grouped: dict[tuple[str, str], list[Relation]] = collections.defaultdict(list)
        for rel in self.world.relations_of(entity.id):
            grouped[rel.predicate, _role(rel, entity.id)].append(rel)
        groups = [g for g in grouped.values() if g != [stated]]
        self.rng.shuffle(groups)
        return groups


def _topic_section(r: _Renderer, entity: Entity) -> None:
    covered = r.opening(entity)
    names = [n for n in entity.attributes if n != "pronoun" and n not in covered]
    r.rng.shuffle(names)
    r.attributes(entity, names)
    if r.rng.random() < 0.5:
        r.paragraph_break()
    for group in r.groups(entity):
        r.relation_group(entity, group)


def _passage(r: _Renderer, entity: Entity, via: Relation, depth: int) -> None:
    """A short passage about an entity reached through `via`; shorter when deeper."""
    if r.rng.random() < 0.85:
        r.paragraph_break()
    r.name_next = True  # a passage opens by naming its entity
    if r.rng.random() < 0.25:
        r.say(templates.PASSAGE_INTROS, entity)
    r.relation(entity, via)
    r.name_next = True
    covered = r.opening(entity) if r.rng.random() < 0.7 else frozenset()
    names = [n for n in entity.attributes if n != "pronoun" and n not in covered]
    r.rng.shuffle(names)
    r.attributes(entity, names if depth == 1 else names[: r.rng.randint(1, 2)])
    for group in r.groups(entity, stated=via)[: (3, 1, 0)[depth - 1]]:
        r.relation_group(entity, group)


def _render(world: World, topic_id: str, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """Renders an article and returns it with the ids it mentions (topic first)."""
    r = _Renderer(world, rng)
    budget = math.exp(rng.uniform(math.log(_MIN_WORDS), math.log(_MAX_WORDS)))
    _topic_section(r, world.entity(topic_id))
    visited = {topic_id}
    queue: collections.deque[tuple[str, Relation, int]] = collections.deque()

    def expand(entity_id: str, depth: int) -> None:
        if depth < _MAX_DEPTH:
            rels = list(world.relations_of(entity_id))
            rng.shuffle(rels)
            queue.extend((_other(rel, entity_id), rel, depth + 1) for rel in rels)

    expand(topic_id, 0)
    while queue and r.words < budget:
        entity_id, via, depth = queue.popleft()
        if entity_id not in visited:
            visited.add(entity_id)
            _passage(r, world.entity(entity_id), via, depth)
            expand(entity_id, depth)
    return r.text(), tuple(r.mentioned)


def render_document(world: World, topic_id: str, rng: random.Random) -> str:
    """An encyclopedic article about `topic_id`, drawing all choices from `rng`."""
    return _render(world, topic_id, rng)[0]


def _stable_int(*parts: object) -> int:
    """A 64-bit integer from `parts` that is the same in every process."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _split_topics(world: World, spec: CorpusSpec) -> dict[str, list[str]]:
    """Assigns each entity to one split by a seeded hash, so splits share no topic."""
    total = spec.num_train_documents + spec.num_validation_documents
    share = spec.num_validation_documents / total
    ranked = sorted(world.entities, key=lambda e: (_stable_int(spec.seed, "split", e.id), e.id))
    cut = round(share * len(ranked))
    if spec.num_validation_documents:
        cut = min(max(cut, 1), len(ranked) - 1)
    return {
        "validation": sorted(e.id for e in ranked[:cut]),
        "train": sorted(e.id for e in ranked[cut:]),
    }


def generate_corpus(spec: CorpusSpec) -> tuple[World, dict[str, list[Document]]]:
    """Generates the world and its train/validation documents for `spec`."""
    spec.validate()
    world = generate_world(spec.num_entities, spec.seed)
    topics = _split_topics(world, spec)
    counts = {
        "train": spec.num_train_documents,
        "validation": spec.num_validation_documents,
    }
    splits: dict[str, list[Document]] = {}
    for split, count in counts.items():
        order = topics[split]
        random.Random(_stable_int(spec.seed, split, "order")).shuffle(order)
        documents = []
        for i in range(count):
            topic = order[i % len(order)]
            text, mentioned = _render(world, topic, random.Random(_stable_int(spec.seed, split, i)))
            documents.append(Document(f"{split}-{i:07d}", topic, mentioned, text))
        splits[split] = documents
    return world, splits
