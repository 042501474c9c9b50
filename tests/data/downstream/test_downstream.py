"""Synthetic downstream suite: determinism, entity-disjoint splits, truth to the world, the second language's
rules, and SeqIO tasks that tokenize, end in EOS, and score hand-computed cases."""

from __future__ import annotations

import collections
import hashlib
import os
import pathlib
import re
import subprocess
import sys

import pytest
import seqio

from t5x_tl.data.corpus.world import KINDS, SYMMETRIC_PREDICATES, World, generate_world
from t5x_tl.data.downstream import pairs, qa, summaries, translation
from t5x_tl.data.downstream.generators import SPLITS, Clause, Phrase, english, entity_splits, facts_of, statement
from t5x_tl.data.downstream.registry import register_synthetic_tasks

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
FAMILIES = (pairs.FAMILY, qa.FAMILY, summaries.FAMILY, translation.FAMILY)
WORLD_SIZE, SEED, COUNT = 120, 7, 150
TASK_SIZES = {"train": 5, "validation": 4, "test": 3}
# Fact key -> (predicate, whether the entity is the subject), read straight from the world as an oracle.
WORLD_RELATIONS = {
    "born_in": ("born_in", True),
    "lives_in": ("lives_in", True),
    "works_for": ("works_for", True),
    "married_to": ("married_to", True),
    "headquartered_in": ("headquartered_in", True),
    "located_in": ("located_in", True),
    "made_by": ("created", False),
    "owned_by": ("owns", False),
}


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WORLD_SIZE, SEED)


@pytest.fixture(scope="module")
def examples(world) -> dict[tuple[str, str], list[dict[str, str]]]:
    return {(f.name, split): f.examples(world, SEED, split, COUNT) for f in FAMILIES for split in SPLITS}


def _digest(examples: dict[tuple[str, str], list[dict[str, str]]]) -> str:
    return hashlib.sha256(repr(sorted(examples.items())).encode()).hexdigest()


def _world_value(world: World, entity_id: str, key: str) -> str | None:
    """The fact as the world records it (None if the entity lacks it), without the generators' code."""
    entity = world.entity(entity_id)
    if key in entity.attributes:
        return str(entity.attributes[key])
    predicate, as_subject = WORLD_RELATIONS[key]
    others = [
        r.object if r.subject == entity_id else r.subject
        for r in world.relations_of(entity_id)
        if r.predicate == predicate and (predicate in SYMMETRIC_PREDICATES or (r.subject == entity_id) == as_subject)
    ]
    assert len(others) <= 1
    return world.entity(others[0]).name if others else None


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.) ", text)


def test_examples_are_identical_across_runs_and_processes(world, examples):
    again = {
        (f.name, s): f.examples(generate_world(WORLD_SIZE, SEED), SEED, s, COUNT) for f in FAMILIES for s in SPLITS
    }
    assert _digest(again) == _digest(examples)
    assert pairs.FAMILY.examples(world, SEED + 1, "train", 20) != examples["pairs", "train"][:20]
    child = (
        "import hashlib\n"
        "from t5x_tl.data.downstream import pairs, qa, summaries, translation\n"
        "from t5x_tl.data.corpus.world import generate_world\n"
        f"world = generate_world({WORLD_SIZE}, {SEED})\n"
        f"examples = {{(f.name, s): f.examples(world, {SEED}, s, {COUNT})\n"
        "    for f in (pairs.FAMILY, qa.FAMILY, summaries.FAMILY, translation.FAMILY)\n"
        f"    for s in {SPLITS!r}}}\n"
        "print(hashlib.sha256(repr(sorted(examples.items())).encode()).hexdigest())\n"
    )
    # A fresh interpreter with another string-hash seed must draw the same examples.
    env = dict(os.environ, PYTHONHASHSEED="4321", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == _digest(examples)


def test_splits_partition_entities_and_examples_keep_to_their_split(world, examples):
    splits = entity_splits(world, SEED)
    ids = [i for split in SPLITS for i in splits[split]]
    assert sorted(ids) == sorted(e.id for e in world.entities)
    for split in ("validation", "test"):
        assert {world.entity(i).kind for i in splits[split]} == set(KINDS)
        assert 0.05 * WORLD_SIZE <= len(splits[split]) <= 0.15 * WORLD_SIZE
    for family in FAMILIES:
        about = {split: {ex["entity"] for ex in examples[family.name, split]} for split in SPLITS}
        for split in SPLITS:
            assert about[split] <= set(splits[split])
        assert len(about["validation"]) > 1


def test_qa_answers_are_world_facts_found_verbatim_in_the_context(world, examples):
    keys = set()
    for split in SPLITS:
        for ex in examples["qa", split]:
            question, context = re.fullmatch(r"question (.+?) context (.+)", ex["inputs"]).groups()
            assert ex["targets"] == _world_value(world, ex["entity"], ex["key"])
            assert re.search(rf"\b{re.escape(ex['targets'])}\b", context)
            assert world.entity(ex["entity"]).name in question
            keys.add(ex["key"])
    assert {"born_in", "made_by", "birth_year", "colour"} <= keys


def test_pair_premises_are_true_and_labels_follow_from_them(world, examples):
    labels = collections.Counter()
    for split in SPLITS:
        for ex in examples["pairs", split]:
            premise, hypothesis = re.fullmatch(r"nli premise (.+) hypothesis (.+)", ex["inputs"]).groups()
            topic = world.entity(ex["entity"])
            true = {key: english(statement(world, topic, key, value)) for key, value in facts_of(world, topic).items()}
            sentences = _sentences(premise)
            assert set(sentences) <= set(true.values())
            stated = true[ex["key"]] in sentences
            label = ex["targets"]
            labels[label] += 1
            if label == "entailment":
                assert stated and hypothesis == true[ex["key"]]
            elif label == "contradiction":
                assert stated and hypothesis not in true.values()
            else:
                assert label == "neutral" and not stated
    total = sum(labels.values())
    assert set(labels) == set(pairs.LABELS) and min(labels.values()) > total / 5


def test_summaries_state_the_lead_facts_the_document_states(world, examples):
    for split in SPLITS:
        for ex in examples["summaries", split]:
            topic = world.entity(ex["entity"])
            for key in summaries.LEAD_FACTS[topic.kind]:
                value = _world_value(world, topic.id, key)
                if value is not None:
                    assert value in ex["targets"] and value in ex["inputs"]
    ex = next(e for e in examples["summaries", "test"] if world.entity(e["entity"]).kind == "person")
    person = world.entity(ex["entity"])
    job, employer = person.attributes["occupation"], _world_value(world, person.id, "works_for")
    expected = (
        f"{person.name} worked as {'an' if job[0] in 'aeiou' else 'a'} {job}, "
        f"was born in {person.attributes['birth_year']}"
        + (", " if employer else " and ")
        + f"came from {person.attributes['home_region']}"
        + (f" and worked for the {employer}." if employer else ".")
    )
    assert ex["targets"] == expected


def test_translation_orders_words_marks_plurals_and_keeps_names():
    lexicon = translation.generate_lexicon(["owns", "clock", "old", "red", "the", "in", "stands"], seed=3)
    owns = Clause(Phrase(("Ana", "Tol"), proper=True), ("owns",), "", Phrase(("clock",), ("old", "red"), "3", True))
    assert english(owns) == "Ana Tol owns 3 old red clocks."
    clock, old, red, plural = lexicon["clock"], lexicon["old"], lexicon["red"], translation.PLURAL_SUFFIX
    assert translation.translate(owns, lexicon) == f"Ana Tol {clock}{plural} {old} {red} 3 {lexicon['owns']}."
    stands = Clause(Phrase(("clock",), determiner="the"), ("stands",), "in", Phrase(("Brenholm",), proper=True))
    assert english(stands) == "The clock stands in Brenholm."
    expected = f"{clock} {lexicon['the']} Brenholm {lexicon['in']} {lexicon['stands']}."
    assert translation.translate(stands, lexicon) == expected[0].upper() + expected[1:]


def test_lexicon_is_one_to_one_seeded_and_stable_as_the_vocabulary_grows(world, examples):
    lexicon = translation.world_lexicon(world)
    assert len(set(lexicon.values())) == len(lexicon) > 100
    assert translation.world_lexicon(generate_world(WORLD_SIZE, SEED)) == lexicon
    assert translation.generate_lexicon(lexicon, seed=SEED + 1) != lexicon
    grown = translation.generate_lexicon([*lexicon, "lighthouse", "orchard"], seed=SEED)
    assert {w: grown[w] for w in lexicon} == lexicon
    for ex in examples["translation", "test"]:
        english_text = ex["inputs"].removeprefix(translation.PREFIX)
        names = re.findall(r"\b[A-Z][a-z]+\b|\d+", english_text)
        assert all(name in ex["targets"] for name in names if name != "The")
        assert len(_sentences(english_text)) == len(_sentences(ex["targets"]))


@pytest.fixture(scope="module")
def tasks(small_data) -> list[seqio.Task]:
    return [seqio.get_mixture_or_task(name) for name in register_synthetic_tasks(small_data, TASK_SIZES)]


def test_registration_is_idempotent_and_names_follow_data_and_sizes(small_data, tasks):
    names = [task.name for task in tasks]
    assert register_synthetic_tasks(small_data, TASK_SIZES) == names
    assert [name.rsplit("_", 1)[0] for name in names] == [f"synthetic_{f.name}" for f in FAMILIES]
    assert set(register_synthetic_tasks(small_data, {**TASK_SIZES, "test": 4})).isdisjoint(names)
    assert {"synthetic_pairs", "synthetic_translation"} <= set(seqio.TaskRegistry.names())  # default suite
    with pytest.raises(ValueError, match="examples_per_split"):
        register_synthetic_tasks(small_data, {"train": 5})


def test_tasks_yield_the_generated_examples_tokenized_with_eos(small_data, tasks):
    world = small_data.files().world()
    for family, task in zip(FAMILIES, tasks, strict=True):
        vocabulary = task.output_features["targets"].vocabulary
        dataset = task.get_dataset({"inputs": 2048, "targets": 256}, split="test", shuffle=False)
        got = list(dataset.as_numpy_iterator())
        expected = family.examples(world, small_data.corpus.seed, "test", TASK_SIZES["test"])
        assert len(got) == len(expected)
        for ex, want in zip(got, expected, strict=True):
            for key in ("inputs", "targets"):
                tokens = ex[key].tolist()
                assert tokens[-1] == vocabulary.eos_id and vocabulary.eos_id not in tokens[:-1]
                assert ex[f"{key}_pretokenized"].decode() == want[key] == vocabulary.decode(tokens[:-1])
        assert sorted(p.name for p in task.source.directory.iterdir()) == [f"{s}.tfrecord" for s in sorted(SPLITS)]


def _score(task: seqio.Task, targets: list[str], predictions: list[str]) -> dict[str, float]:
    targets = [task.postprocess_fn(t, example={}, is_target=True) for t in targets]
    predictions = [task.postprocess_fn(p, example={}, is_target=False) for p in predictions]
    return {k: v for fn in task.predict_metric_fns for k, v in fn(targets, predictions).items()}


def test_postprocessors_and_metrics_score_hand_computed_cases(tasks):
    pair_task, qa_task, summary_task, translation_task = tasks
    labels = ["entailment", "neutral", "contradiction", "contradiction"]
    scores = _score(pair_task, labels, ["entailment", "neutral", "contradiction", "maybe"])
    # Per-class F1: 1, 1, and 2/3 for "contradiction" (one of two found, none wrongly).
    assert scores == pytest.approx({"accuracy": 75.0, "macro_f1": 100 * (1 + 1 + 2 / 3) / 3})
    # SQuAD normalisation drops "the" and the full stop; "Xyz" alone has precision 1 and recall 1/2.
    scores = _score(qa_task, ["Xyz Guild", "Xyz Guild"], ["the Xyz Guild.", "Xyz"])
    assert scores == pytest.approx({"em": 50.0, "f1": 100 * (1 + 2 / 3) / 2})
    summary = "Ana Tol worked as a weaver and came from Ostria."
    assert _score(summary_task, [summary], [summary])["rouge1"] == pytest.approx(100.0)
    assert _score(translation_task, ["Ana Tol kamo ris."], ["Ana Tol kamo ris."]) == pytest.approx({"bleu": 100.0})
