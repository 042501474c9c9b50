"""TFDS benchmark tasks on mocked TFDS data: text-to-text format, label round trips and metrics end to end."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from t5x_tl.data.tasks import tfds as tfds_tasks

# The start of every task's inputs text: T5's prompt then the first field.
INPUT_PREFIXES = {
    "glue_cola_v2": "cola sentence: ",
    "glue_sst2_v2": "sst2 sentence: ",
    "glue_mrpc_v2": "mrpc sentence1: ",
    "glue_qqp_v2": "qqp question1: ",
    "glue_stsb_v2": "stsb sentence1: ",
    "glue_mnli_v2": "mnli hypothesis: ",
    "glue_mnli_matched_v2": "mnli hypothesis: ",
    "glue_mnli_mismatched_v2": "mnli hypothesis: ",
    "glue_qnli_v2": "qnli question: ",
    "glue_rte_v2": "rte sentence1: ",
    "glue_wnli_v2": "wnli sentence1: ",
    "glue_ax_v2": "mnli hypothesis: ",
    "super_glue_boolq_v102": "boolq passage: ",
    "super_glue_cb_v102": "cb hypothesis: ",
    "super_glue_copa_v102": "copa choice1: ",
    "super_glue_multirc_v102": "multirc question: ",
    "super_glue_record_v102": "record query: ",
    "super_glue_rte_v102": "rte hypothesis: ",
    "super_glue_wic_v102": "wic sentence1: ",
    "super_glue_wsc_v102": "wsc text: ",
    "super_glue_axb_v102": "rte hypothesis: ",
    "super_glue_axg_v102": "rte hypothesis: ",
    "cnn_dailymail_v340": "summarize: ",
    "squad_v110": "question: ",
    "wmt14_ende": "translate English to German: ",
    "wmt14_enfr": "translate English to French: ",
    "wmt16_enro": "translate English to Romanian: ",
}
TABLE = {task.name: task for task in tfds_tasks.TASKS}
# Metrics each task reports, where not just accuracy; GLUE AX and SuperGLUE AX-b/AX-g are unlabelled test sets.
METRIC_KEYS = {
    "glue_cola_v2": {"matthews_corrcoef"},
    "glue_mrpc_v2": {"f1", "accuracy"},
    "glue_qqp_v2": {"f1", "accuracy"},
    "glue_stsb_v2": {"pearson_corrcoef", "spearman_corrcoef"},
    "glue_ax_v2": set(),
    "super_glue_cb_v102": {"macro_f1", "accuracy"},
    "super_glue_multirc_v102": {"f1", "exact_match"},
    "super_glue_record_v102": {"em", "f1"},
    "super_glue_axb_v102": set(),
    "super_glue_axg_v102": set(),
    "cnn_dailymail_v340": {"rouge1", "rouge2", "rougeLsum"},
    "squad_v110": {"em", "f1"},
    "wmt14_ende": {"bleu"},
    "wmt14_enfr": {"bleu"},
    "wmt16_enro": {"bleu"},
}
CORRELATIONS = {"pearson_corrcoef", "spearman_corrcoef"}
CLASSIFICATION = [
    name for name, task in TABLE.items() if getattr(task.postprocess_fn, "func", None) is tfds_tasks.label_id
]
NUM_EXAMPLES = 4
VOCABULARY = seqio.ByteVocabulary()


def _tfds_split(task: tfds_tasks.TfdsTask) -> tuple[str, str]:
    """The split a test reads (validation where there is one) and its TFDS name."""
    splits = task.splits if isinstance(task.splits, Mapping) else {split: split for split in task.splits}
    split = "validation" if "validation" in splits else next(iter(splits))
    return split, splits[split]


@pytest.fixture(scope="module")
def names():
    registered = tfds_tasks.register_tfds_tasks(VOCABULARY)
    yield registered
    for name in registered:
        seqio.TaskRegistry.remove(name)


@pytest.fixture(scope="module")
def examples(names):
    """Each task's preprocessed examples next to the raw TFDS examples they came from (mock data is stable)."""
    pairs = {}
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        for name in names:
            split, tfds_split = _tfds_split(TABLE[name])
            task = seqio.get_mixture_or_task(name)
            # No in-memory caching: deciding it asks TFDS for split sizes, which mocked builders lack.
            ds = task.get_dataset(None, split=split, shuffle=False, try_in_mem_cache=False)
            raw = tfds.load(TABLE[name].tfds_name, split=tfds_split)
            pairs[name] = list(zip(tfds.as_numpy(ds), tfds.as_numpy(raw), strict=True))
    return pairs


def test_every_table_row_is_registered_under_a_name_without_hyphens(names):
    assert names == list(INPUT_PREFIXES)
    assert not [name for name in names if "-" in name]
    for name in names:
        assert seqio.get_mixture_or_task(name).output_features["targets"].add_eos


def test_registration_is_idempotent(names):
    tasks = [seqio.get_mixture_or_task(name) for name in names]
    assert tfds_tasks.register_tfds_tasks(seqio.ByteVocabulary(extra_ids=10)) == names
    assert [seqio.get_mixture_or_task(name) for name in names] == tasks


def test_prefix_registers_a_second_set_and_must_be_a_plain_name():
    prefixed = tfds_tasks.register_tfds_tasks(VOCABULARY, prefix="alt_")
    try:
        assert prefixed == [f"alt_{name}" for name in INPUT_PREFIXES]
    finally:
        for name in prefixed:
            seqio.TaskRegistry.remove(name)
    with pytest.raises(ValueError, match="prefix"):
        tfds_tasks.register_tfds_tasks(VOCABULARY, prefix="my-")


def test_pinned_tfds_versions_exist():
    for task in tfds_tasks.TASKS:
        pinned = task.tfds_name.rpartition(":")[2]
        assert str(tfds.builder(task.tfds_name).version) == pinned  # raises for a version TFDS lacks


@pytest.mark.parametrize("name", list(INPUT_PREFIXES))
def test_examples_are_tokenized_text_to_text_ending_in_eos(examples, name):
    assert len(examples[name]) == NUM_EXAMPLES
    for example, _ in examples[name]:
        inputs, targets = example["inputs"], example["targets"]
        assert inputs[-1] == targets[-1] == VOCABULARY.eos_id
        assert len(targets) > 1, "empty target"
        assert VOCABULARY.decode(inputs.tolist()) == example["inputs_pretokenized"].decode()
        assert example["inputs_pretokenized"].decode().startswith(INPUT_PREFIXES[name])


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_label_names_round_trip_to_the_tfds_class_ids(examples, name):
    postprocess = seqio.get_mixture_or_task(name).postprocess_fn
    class_names = tfds.builder(TABLE[name].tfds_name).info.features["label"].names
    assert [postprocess(label, example={}, is_target=False) for label in class_names] == list(range(len(class_names)))
    assert postprocess("not a label", example={}, is_target=False) == tfds_tasks.INVALID_LABEL
    for example, raw in examples[name]:
        assert postprocess(example["targets_pretokenized"].decode(), example=example, is_target=True) == raw["label"]


def test_stsb_targets_are_scores_rounded_to_a_fifth(examples):
    postprocess = seqio.get_mixture_or_task("glue_stsb_v2").postprocess_fn
    for example, raw in examples["glue_stsb_v2"]:
        target = example["targets_pretokenized"].decode()
        assert postprocess(target) == pytest.approx(round(raw["label"] * 5) / 5)
    formatter = TABLE["glue_stsb_v2"].text_to_text
    ex = {"sentence1": tf.constant("a"), "sentence2": tf.constant("b"), "label": tf.constant([3.87, 1.11, 5.0])}
    assert formatter.format_example(ex)["targets"].numpy().tolist() == [b"3.8", b"1.2", b"5.0"]
    for text in ("high", "nan", "inf"):
        assert postprocess(text) == tfds_tasks.INVALID_SIMILARITY


@pytest.mark.parametrize(
    ("name", "answers"), [("squad_v110", ("answers", "text")), ("super_glue_record_v102", ("answers",))]
)
def test_qa_targets_are_the_first_answer_and_score_against_all(examples, name, answers):
    postprocess = seqio.get_mixture_or_task(name).postprocess_fn
    for example, raw in examples[name]:
        references = tfds_tasks.feature(*answers)(raw).tolist()
        assert example["targets_pretokenized"] == references[0]
        decoded = [answer.decode() for answer in references]
        assert postprocess(example["targets_pretokenized"].decode(), example=example, is_target=True) == decoded
        assert postprocess("predicted", example=example, is_target=False) == "predicted"


def test_multirc_targets_carry_their_question_group(examples):
    postprocess = seqio.get_mixture_or_task("super_glue_multirc_v102").postprocess_fn
    for example, raw in examples["super_glue_multirc_v102"]:
        target = postprocess(example["targets_pretokenized"].decode(), example=example, is_target=True)
        assert target == {"value": raw["label"], "group": f"{raw['idx']['paragraph']}:{raw['idx']['question']}"}
        assert postprocess("True", example=example, is_target=False) == {"value": 1}


def test_wsc_marks_candidate_and_pronoun_by_word_index():
    ex = {
        "text": tf.constant("The trophy does not fit into the suitcase because it is too large."),
        "span1_index": tf.constant(0),
        "span1_text": tf.constant("The trophy"),
        "span2_index": tf.constant(9),
        "span2_text": tf.constant("it"),
        "label": tf.constant(1, tf.int64),
    }
    formatted = TABLE["super_glue_wsc_v102"].text_to_text.format_example(ex)
    expected = b"wsc text: * The trophy * does not fit into the suitcase because # it # is too large."
    assert formatted["inputs"].numpy() == expected
    assert formatted["targets"].numpy() == b"True"


def test_record_lists_entities_and_turns_highlights_into_sentences():
    ex = {
        "query": tf.constant("@placeholder won"),
        "entities": tf.constant(["Ann", "Bob"]),
        "passage": tf.constant("Ann ran.\n@highlight\nBob lost\n@highlight\nAnn won"),
        "answers": tf.constant([], tf.string),
    }
    formatted = TABLE["super_glue_record_v102"].text_to_text.format_example(ex)
    assert (
        formatted["inputs"].numpy()
        == b"record query: @placeholder won entities: Ann, Bob passage: Ann ran. Bob lost. Ann won"
    )
    assert formatted["targets"].numpy() == tfds_tasks.UNKNOWN_TARGET.encode()


def _scores(task: seqio.Task, examples: list[dict], predictions: list[str]) -> dict[str, float]:
    """Runs the task's metrics the way SeqIO's evaluator does: decode token ids, postprocess, score."""
    ids = [[*VOCABULARY.encode(text), VOCABULARY.eos_id] for text in predictions]
    output = np.array([row + [0] * (max(map(len, ids)) - len(row)) for row in ids])
    scores = {}
    for metric_fn in task.metric_fns:
        metric = seqio.metrics.LegacyMetric.empty(metric_fn, task.postprocess_fn)
        scores |= metric.from_model_output(examples, output, task.output_features).compute()
    return scores


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # all-invalid STS-B predictions
@pytest.mark.parametrize("name", list(INPUT_PREFIXES))
def test_metrics_score_perfect_and_invalid_predictions(examples, name):
    task = seqio.get_mixture_or_task(name)
    inputs = [example for example, _ in examples[name]]
    targets = [example["targets_pretokenized"].decode() for example in inputs]
    perfect = _scores(task, inputs, targets)
    assert perfect.keys() == METRIC_KEYS.get(name, {"accuracy"})
    for key, score in perfect.items():
        # BLEU needs a matching 4-gram, and some mocked targets are shorter than four words.
        if key != "bleu" or any(len(target.split()) >= 4 for target in targets):
            assert score == pytest.approx(100), key
    for key, score in _scores(task, inputs, ["zzz"] * len(inputs)).items():
        # Constant (all-invalid) predictions leave correlation undefined.
        assert math.isnan(score) if key in CORRELATIONS else score == 0, key
