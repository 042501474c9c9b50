"""Tests for the synthetic world generator: determinism, integrity and plausibility."""

import collections

import pytest

from t5x_tl.data.corpus.world import (
    KINDS,
    PREDICATES,
    SYMMETRIC_PREDICATES,
    Entity,
    World,
    generate_world,
)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(600, seed=11)


def test_same_seed_same_world_and_different_seed_differs():
    a, b = generate_world(200, seed=7), generate_world(200, seed=7)
    assert a == b
    assert a.to_json() == b.to_json()
    assert generate_world(200, seed=8).to_json() != a.to_json()


def test_json_round_trip_gives_equal_world(world):
    restored = World.from_json(world.to_json())
    assert restored == world
    assert restored.to_json() == world.to_json()
    person = restored.by_kind("person")[0]
    assert isinstance(person.attributes["birth_year"], int)


@pytest.mark.parametrize("num_entities", [4, 5, 9, 100, 1000])
def test_every_kind_present_and_count_exact(num_entities):
    w = generate_world(num_entities, seed=num_entities)
    assert len(w.entities) == num_entities
    for kind in KINDS:
        assert w.by_kind(kind), kind


def test_kind_mix_roughly_as_intended():
    counts = collections.Counter(e.kind for e in generate_world(1000, seed=0).entities)
    assert counts == {"person": 400, "place": 250, "organisation": 200, "object": 150}


@pytest.mark.parametrize("num_entities", [-1, 0, 3])
def test_too_few_entities_rejected(num_entities):
    with pytest.raises(ValueError, match="num_entities must be at least 4"):
        generate_world(num_entities, seed=0)


def test_ids_and_names_unique(world):
    assert len({e.id for e in world.entities}) == len(world.entities)
    assert len({e.name for e in world.entities}) == len(world.entities)


def test_relations_refer_to_entities_of_the_right_kinds(world):
    for rel in world.relations:
        subject_kind, object_kind = PREDICATES[rel.predicate]
        assert world.entity(rel.subject).kind == subject_kind, rel
        assert world.entity(rel.object).kind == object_kind, rel
        assert rel.subject != rel.object, rel
    assert len(set(world.relations)) == len(world.relations)
    assert {r.predicate for r in world.relations} == set(PREDICATES)


def test_symmetric_relations_stored_once_per_pair(world):
    pairs = [
        (r.predicate, frozenset((r.subject, r.object))) for r in world.relations if r.predicate in SYMMETRIC_PREDICATES
    ]
    assert len(pairs) == len(set(pairs))


def test_indexes_agree_with_relations(world):
    for entity in world.entities[::25]:
        expected = tuple(r for r in world.relations if entity.id in (r.subject, r.object))
        assert world.relations_of(entity.id) == expected
        assert world.entity(entity.id) is entity
    assert sum(len(world.by_kind(k)) for k in KINDS) == len(world.entities)
    with pytest.raises(ValueError, match="kind must be one of"):
        world.by_kind("animal")


def test_entities_are_read_only(world):
    with pytest.raises(TypeError):
        world.entities[0].attributes["birth_year"] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="kind"):
        Entity("x", "animal", "X", {})


def _single(world: World, subject: str, predicate: str) -> Entity:
    (rel,) = [r for r in world.relations_of(subject) if r.subject == subject and r.predicate == predicate]
    return world.entity(rel.object)


def test_people_have_plausible_attributes(world):
    for person in world.by_kind("person"):
        attrs = person.attributes
        assert attrs["pronoun"] in ("he", "she", "they")
        assert 1700 <= attrs["birth_year"] <= 2000
        birthplace = _single(world, person.id, "born_in")
        _single(world, person.id, "lives_in")
        assert attrs["home_region"] == birthplace.attributes["region"]


def test_dates_are_consistent(world):
    year = {e.id: e.attributes.get("birth_year") for e in world.by_kind("person")}
    for rel in world.relations:
        made = world.entity(rel.object).attributes
        if rel.predicate == "founded":
            assert made["founded_year"] >= year[rel.subject] + 18, rel
        elif rel.predicate == "created":
            assert made["year_made"] >= year[rel.subject] + 18, rel
        elif rel.predicate == "mentor_of":
            assert year[rel.object] - year[rel.subject] >= 12, rel


def test_places_form_a_forest_sharing_regions(world):
    parent = {r.subject: r.object for r in world.relations if r.predicate == "located_in"}
    for child, up in parent.items():
        assert world.entity(child).attributes["region"] == (world.entity(up).attributes["region"])
        seen = {child}
        while up in parent:
            assert up not in seen, "located_in has a cycle"
            seen.add(up)
            up = parent[up]


@pytest.mark.parametrize("num_entities, seed", [(4, 0), (10, 1), (400, 2), (2000, 3)])
def test_no_entity_is_isolated(num_entities, seed):
    w = generate_world(num_entities, seed)
    assert all(w.relations_of(e.id) for e in w.entities)
