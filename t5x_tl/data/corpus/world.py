"""Seeded generator of a synthetic encyclopedic world: entities, attributes, relations.

The world is plain, queryable data (not text) so that the pretraining corpus and
every downstream task derived from it can be rendered from, and checked against,
the same facts. All names are built from syllables; nothing is copied from outside.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import random
import types
from collections.abc import Callable, Mapping, Sequence

KINDS = ("person", "place", "organisation", "object")
_ID_PREFIX = {"person": "per", "place": "pla", "organisation": "org", "object": "obj"}
# Shares of the non-person kinds; people take the remainder (about 40%).
_KIND_SHARES = {"place": 0.25, "organisation": 0.20, "object": 0.15}

# predicate -> (subject kind, object kind).
PREDICATES: Mapping[str, tuple[str, str]] = types.MappingProxyType(
    {
        "born_in": ("person", "place"),
        "lives_in": ("person", "place"),
        "works_for": ("person", "organisation"),
        "founded": ("person", "organisation"),
        "headquartered_in": ("organisation", "place"),
        "located_in": ("place", "place"),
        "created": ("person", "object"),
        "owns": ("organisation", "object"),
        "married_to": ("person", "person"),
        "mentor_of": ("person", "person"),
        "rival_of": ("person", "person"),
        "twinned_with": ("place", "place"),
        "partner_of": ("organisation", "organisation"),
    }
)
# Stored once per pair; true in both directions.
SYMMETRIC_PREDICATES = frozenset({"married_to", "rival_of", "twinned_with", "partner_of"})


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ONSETS = ("", *_words("b c d f g h k l m n p r s t v z br dr gr kr tr st th sh ch w y"))
_VOWELS = _words("a e i o u a e o ai ea io ou y")
_CODAS = ("", "", "", *_words("n r l s m nd rk st th v x"))
_GIVEN_ENDINGS = {"she": _words("a ine elle ia wen"), "he": _words("or an ric o us")}
_GIVEN_ENDINGS["they"] = _GIVEN_ENDINGS["she"] + _GIVEN_ENDINGS["he"] + ("el", "is")
_FAMILY_ENDINGS = ("", "", *_words("son ard ley ova ini ez ham dottir"))
_PLACE_ENDINGS = _words("ford holm by mere wick ton dale burg ria port stead ven moor ay")

# Place types by level: level-0 places contain level-1 places, which contain level-2.
_PLACE_LEVELS = (
    ("province", "river valley", "island", "highland"),
    ("city", "port city", "market town"),
    ("town", "village", "hamlet"),
)
_POPULATION = {
    "province": (200_000, 3_000_000),
    "river valley": (20_000, 400_000),
    "island": (500, 250_000),
    "highland": (2_000, 90_000),
    "city": (40_000, 1_500_000),
    "port city": (20_000, 600_000),
    "market town": (3_000, 40_000),
    "town": (1_500, 30_000),
    "village": (60, 2_500),
    "hamlet": (8, 200),
}
_CLIMATES = _words("temperate arid humid alpine maritime subtropical continental")
_CLIMATES += ("cold", "mild", "windy")
_OCCUPATIONS = _words(
    "painter engineer physician cartographer poet merchant astronomer botanist "
    "architect historian composer sculptor mathematician shipwright weaver judge "
    "teacher chemist navigator glassblower printer clockmaker surveyor librarian"
)
_TRAITS = _words(
    "patient ambitious meticulous generous stubborn curious reserved cheerful outspoken methodical restless modest"
)

# org type -> employee range.
_ORG_TYPES = {
    "company": (20, 20_000),
    "guild": (15, 900),
    "university": (300, 12_000),
    "institute": (25, 2_500),
    "society": (10, 600),
    "museum": (8, 400),
    "bank": (40, 15_000),
    "workshop": (3, 60),
    "press": (10, 800),
    "observatory": (5, 200),
    "trading house": (20, 5_000),
    "academy": (30, 3_000),
}
_FIELDS = _words(
    "shipbuilding astronomy medicine textiles printing banking cartography "
    "glassmaking botany mining music architecture chemistry clockmaking "
    "agriculture navigation"
)

_METAL = ("brass", "bronze", "iron", "silver", "copper", "steel", "pewter")
_WOOD = ("oak", "walnut", "cedar", "maple", "pine")
# object type -> (weight range in kg, materials).
_OBJECT_TYPES = {
    "lantern": ((1, 6), (*_METAL, "glass")),
    "astrolabe": ((1, 8), _METAL),
    "clock": ((2, 300), _METAL + _WOOD),
    "compass": ((1, 3), _METAL),
    "loom": ((40, 400), _WOOD),
    "telescope": ((3, 150), _METAL + _WOOD),
    "harp": ((5, 40), _WOOD),
    "globe": ((2, 60), (*_WOOD, "paper", "porcelain")),
    "printing press": ((150, 1_500), (*_WOOD, "iron", "steel")),
    "chalice": ((1, 4), ("silver", "gold", "pewter", "glass")),
    "sextant": ((1, 4), _METAL),
    "music box": ((1, 6), (*_WOOD, "brass")),
    "barometer": ((2, 25), (*_METAL, "glass", *_WOOD)),
    "violin": ((1, 2), _WOOD),
    "bell": ((20, 4_000), ("bronze", "iron", "brass")),
    "tapestry": ((3, 80), ("wool", "silk", "linen")),
    "sundial": ((5, 200), ("marble", "granite", "bronze")),
}
_COLOURS = ("red", "green", "blue", "amber", "grey", "black", "white", "golden")
_COLOURS += ("dark brown", "pale yellow", "copper-red", "deep violet")

_FIRST_YEAR, _LAST_YEAR = 1720, 2025


@dataclasses.dataclass(frozen=True)
class Entity:
    """One thing in the world; attributes are read-only so a world cannot drift."""

    id: str
    kind: str
    name: str
    attributes: Mapping[str, str | int] = dataclasses.field(hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Entity kind must be one of {KINDS}; got {self.kind!r}")
        object.__setattr__(self, "attributes", types.MappingProxyType(dict(self.attributes)))


@dataclasses.dataclass(frozen=True)
class Relation:
    """A directed fact `subject predicate object` between entity ids."""

    subject: str
    predicate: str
    object: str


@dataclasses.dataclass(frozen=True)
class World:
    """Entities and relations, with lookup indexes built once at construction."""

    seed: int
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]
    _by_id: dict[str, Entity] = dataclasses.field(init=False, repr=False, compare=False)
    _by_kind: dict[str, tuple[Entity, ...]] = dataclasses.field(init=False, repr=False, compare=False)
    _relations_of: dict[str, tuple[Relation, ...]] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {e.id: e for e in self.entities}
        if len(by_id) != len(self.entities):
            raise ValueError("World entity ids must be unique")
        incident: dict[str, list[Relation]] = {e.id: [] for e in self.entities}
        for rel in self.relations:
            for end in (rel.subject, rel.object):
                if end not in by_id:
                    raise ValueError(f"Relation {rel} refers to unknown entity {end!r}")
            incident[rel.subject].append(rel)
            if rel.object != rel.subject:
                incident[rel.object].append(rel)
        by_kind = {k: tuple(e for e in self.entities if e.kind == k) for k in KINDS}
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_kind", by_kind)
        object.__setattr__(self, "_relations_of", {k: tuple(v) for k, v in incident.items()})

    def entity(self, entity_id: str) -> Entity:
        return self._by_id[entity_id]

    def by_kind(self, kind: str) -> tuple[Entity, ...]:
        if kind not in self._by_kind:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        return self._by_kind[kind]

    def relations_of(self, entity_id: str) -> tuple[Relation, ...]:
        """Relations with the entity as subject or object, in world order."""
        return self._relations_of[entity_id]

    def to_json(self) -> str:
        return json.dumps(
            {
                "seed": self.seed,
                "entities": [
                    {
                        "id": e.id,
                        "kind": e.kind,
                        "name": e.name,
                        "attributes": dict(e.attributes),
                    }
                    for e in self.entities
                ],
                "relations": [[r.subject, r.predicate, r.object] for r in self.relations],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> World:
        data = json.loads(text)
        return cls(
            seed=data["seed"],
            entities=tuple(Entity(**e) for e in data["entities"]),
            relations=tuple(Relation(*r) for r in data["relations"]),
        )


class _Namer:
    """Draws pronounceable syllable names, never repeating one within a world."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def _root(self, min_syllables: int, max_syllables: int) -> str:
        rng = self._rng
        parts = [
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
            for _ in range(rng.randint(min_syllables, max_syllables))
        ]
        return "".join(parts).capitalize()

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            name = make()
            if name not in self._used:
                self._used.add(name)
                return name

    def person(self, pronoun: str) -> str:
        rng = self._rng
        return self._unique(
            lambda: (
                self._root(1, 2)
                + rng.choice(_GIVEN_ENDINGS[pronoun])
                + " "
                + self._root(1, 2)
                + rng.choice(_FAMILY_ENDINGS)
            )
        )

    def place(self) -> str:
        return self._unique(lambda: self._root(1, 2) + self._rng.choice(_PLACE_ENDINGS))

    def region(self) -> str:
        return self._unique(lambda: self._root(2, 3) + self._rng.choice(("ia", "and", "a", "or")))

    def titled(self, title: str) -> str:
        return self._unique(lambda: f"{self._root(2, 3)} {title.title()}")


@dataclasses.dataclass
class _Draft:
    """Mutable entity under construction."""

    id: str
    kind: str
    name: str
    attributes: dict[str, str | int]


def _kind_counts(num_entities: int) -> dict[str, int]:
    counts = {k: max(1, int(num_entities * s)) for k, s in _KIND_SHARES.items()}
    counts["person"] = num_entities - sum(counts.values())
    return counts


def _new_id(kind: str, index: int) -> str:
    return f"{_ID_PREFIX[kind]}{index:05d}"


def _settlements(places: list[_Draft]) -> list[_Draft]:
    """Places people can be born in and organisations sit in (all, if none qualify)."""
    towns = [p for p in places if p.attributes["place_type"] not in _PLACE_LEVELS[0]]
    return towns or places


def _make_places(rng: random.Random, namer: _Namer, count: int, rels: list[Relation]) -> list[_Draft]:
    """Places in a containment forest; children inherit their parent's region.

    Every place is linked to another, so no article about one is left with nothing
    to wander to.
    """
    regions = [namer.region() for _ in range(max(2, count // 6 + 1))]
    level0 = max(1, round(count * 0.15))
    level1 = round(count * 0.35)
    places: list[_Draft] = []
    by_level: list[list[_Draft]] = [[], [], []]
    for i in range(count):
        level = 0 if i < level0 else 1 if i < level0 + level1 else 2
        kind = rng.choice(_PLACE_LEVELS[level])
        low, high = _POPULATION[kind]
        population = rng.randint(low, high)
        region = rng.choice(regions)
        pid = _new_id("place", i)
        parents = (by_level[level - 1] or by_level[0]) if level else []
        if parents:
            # Early children go round-robin so that every parent contains a place.
            rank = len(by_level[level])
            parent = parents[rank] if rank < len(parents) else rng.choice(parents)
            rels.append(Relation(pid, "located_in", parent.id))
            region = parent.attributes["region"]
            population = min(population, max(1, int(parent.attributes["population"]) // 3))
        start = (400, 600, 800)[level]
        attrs = {
            "place_type": kind,
            "population": population,
            "climate": rng.choice(_CLIMATES),
            "region": region,
            "founded_year": rng.randint(start, start + 1100),
        }
        draft = _Draft(pid, "place", namer.place(), attrs)
        places.append(draft)
        by_level[level].append(draft)
    return places


def _make_people(
    rng: random.Random,
    namer: _Namer,
    count: int,
    places: list[_Draft],
    rels: list[Relation],
) -> list[_Draft]:
    settlements = _settlements(places)
    people = []
    for i in range(count):
        pronoun = rng.choices(("she", "he", "they"), weights=(46, 46, 8))[0]
        birthplace = rng.choice(settlements)
        home = birthplace if rng.random() < 0.35 else rng.choice(settlements)
        attrs = {
            "pronoun": pronoun,
            "birth_year": rng.randint(_FIRST_YEAR, 1990),
            "occupation": rng.choice(_OCCUPATIONS),
            "home_region": birthplace.attributes["region"],
            "trait": rng.choice(_TRAITS),
        }
        person = _Draft(_new_id("person", i), "person", namer.person(pronoun), attrs)
        rels.append(Relation(person.id, "born_in", birthplace.id))
        rels.append(Relation(person.id, "lives_in", home.id))
        people.append(person)
    return people


class _Cohort:
    """People sorted by birth year, for drawing plausible contemporaries quickly."""

    def __init__(self, people: Sequence[_Draft]) -> None:
        self._people = sorted(people, key=lambda p: (p.attributes["birth_year"], p.id))
        self._years = [int(p.attributes["birth_year"]) for p in self._people]

    def people(self) -> list[_Draft]:
        return self._people

    def anyone(self, rng: random.Random) -> _Draft:
        return rng.choice(self._people)

    def born_between(self, rng: random.Random, first: int, last: int) -> _Draft | None:
        lo = bisect.bisect_left(self._years, first)
        hi = bisect.bisect_right(self._years, last)
        return self._people[rng.randrange(lo, hi)] if hi > lo else None


def _year(draft: _Draft, key: str) -> int:
    return int(draft.attributes[key])


def _make_orgs(
    rng: random.Random,
    namer: _Namer,
    count: int,
    places: list[_Draft],
    cohort: _Cohort,
    rels: list[Relation],
) -> list[_Draft]:
    """Organisations founded by one or two contemporaries when they were adults."""
    seats = _settlements(places)
    orgs = []
    for i in range(count):
        org_type = rng.choice(tuple(_ORG_TYPES))
        founders = [cohort.anyone(rng)]
        birth = _year(founders[0], "birth_year")
        partner = cohort.born_between(rng, birth - 15, birth + 15)
        if rng.random() < 0.25 and partner is not None and partner is not founders[0]:
            founders.append(partner)
        latest = max(_year(f, "birth_year") for f in founders)
        attrs = {
            "org_type": org_type,
            "field": rng.choice(_FIELDS),
            "founded_year": min(_LAST_YEAR, latest + rng.randint(22, 45)),
            "employees": rng.randint(*_ORG_TYPES[org_type]),
        }
        org = _Draft(_new_id("organisation", i), "organisation", namer.titled(org_type), attrs)
        rels.extend(Relation(f.id, "founded", org.id) for f in founders)
        rels.append(Relation(org.id, "headquartered_in", rng.choice(seats).id))
        orgs.append(org)
    return orgs


def _make_objects(
    rng: random.Random,
    namer: _Namer,
    count: int,
    cohort: _Cohort,
    orgs: list[_Draft],
    rels: list[Relation],
) -> list[_Draft]:
    """Objects, most made by a person as an adult, the rest held by an organisation."""
    objects = []
    for i in range(count):
        object_type = rng.choice(tuple(_OBJECT_TYPES))
        weights, materials = _OBJECT_TYPES[object_type]
        oid = _new_id("object", i)
        year = rng.randint(1450, 1990)
        made_by_someone = rng.random() < 0.85
        if made_by_someone:
            creator = cohort.anyone(rng)
            rels.append(Relation(creator.id, "created", oid))
            year = min(_LAST_YEAR, _year(creator, "birth_year") + rng.randint(18, 70))
        if not made_by_someone or rng.random() < 0.6:
            rels.append(Relation(rng.choice(orgs).id, "owns", oid))
        attrs = {
            "object_type": object_type,
            "material": rng.choice(materials),
            "colour": rng.choice(_COLOURS),
            "weight_kg": rng.randint(*weights),
            "year_made": year,
        }
        objects.append(_Draft(oid, "object", namer.titled(object_type), attrs))
    return objects


def _employ(rng: random.Random, cohort: _Cohort, orgs: list[_Draft], rels: list[Relation]) -> None:
    """Most people work for an organisation that existed in their working life."""
    by_year = sorted(orgs, key=lambda o: (_year(o, "founded_year"), o.id))
    years = [_year(o, "founded_year") for o in by_year]
    for person in cohort.people():
        open_orgs = bisect.bisect_right(years, _year(person, "birth_year") + 60)
        if open_orgs and rng.random() < 0.8:
            rels.append(Relation(person.id, "works_for", by_year[rng.randrange(open_orgs)].id))


def _connect_people(rng: random.Random, cohort: _Cohort, rels: list[Relation]) -> None:
    """Marriages between neighbours in age, mentors 12-45 years older, and rivals."""
    people = cohort.people()
    paired: set[frozenset[str]] = set()
    i = 0
    while i + 1 < len(people):
        if rng.random() < 0.35:
            a, b = people[i], people[i + 1]
            rels.append(Relation(a.id, "married_to", b.id))
            paired.add(frozenset((a.id, b.id)))
            i += 1
        i += 1
    for person in people:
        birth = _year(person, "birth_year")
        if rng.random() < 0.25:
            mentor = cohort.born_between(rng, birth - 45, birth - 12)
            if mentor is not None:
                rels.append(Relation(mentor.id, "mentor_of", person.id))
        if rng.random() < 0.12:
            rival = cohort.born_between(rng, birth - 20, birth + 20)
            pair = frozenset((person.id, rival.id))
            if rival is not person and pair not in paired:
                paired.add(pair)
                rels.append(Relation(person.id, "rival_of", rival.id))


def _pair_up(
    rng: random.Random,
    members: list[_Draft],
    predicate: str,
    count: int,
    rels: list[Relation],
) -> None:
    """Adds `count` distinct symmetric links among `members` (fewer if too few)."""
    seen: set[frozenset[str]] = set()
    for _ in range(count if len(members) >= 2 else 0):
        a, b = rng.sample(members, 2)
        if frozenset((a.id, b.id)) not in seen:
            seen.add(frozenset((a.id, b.id)))
            rels.append(Relation(a.id, predicate, b.id))


def generate_world(num_entities: int, seed: int) -> World:
    """Builds a world deterministically from `seed` (never touches global random state)."""
    if num_entities < 4:
        raise ValueError(f"num_entities must be at least 4 (one entity of each kind {KINDS}); got {num_entities}")
    rng = random.Random(seed)
    namer = _Namer(rng)
    counts = _kind_counts(num_entities)
    rels: list[Relation] = []
    places = _make_places(rng, namer, counts["place"], rels)
    people = _make_people(rng, namer, counts["person"], places, rels)
    cohort = _Cohort(people)
    orgs = _make_orgs(rng, namer, counts["organisation"], places, cohort, rels)
    objects = _make_objects(rng, namer, counts["object"], cohort, orgs, rels)
    _employ(rng, cohort, orgs, rels)
    _connect_people(rng, cohort, rels)
    towns = _settlements(places)
    _pair_up(rng, towns, "twinned_with", len(towns) // 8, rels)
    _pair_up(rng, orgs, "partner_of", len(orgs) // 6, rels)
    entities = tuple(Entity(d.id, d.kind, d.name, d.attributes) for d in people + places + orgs + objects)
    return World(seed=seed, entities=entities, relations=tuple(rels))
