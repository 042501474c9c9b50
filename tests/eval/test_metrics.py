"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from t5x_tl.eval import metrics


def test_accuracy_is_a_percentage_of_matches():
    assert metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 75.0}


def test_binary_f1_scores_invalid_predictions_as_wrong_not_dropped():
    # The -1 on a positive target becomes a false negative: tp=1, fp=1, fn=1 -> 2/4. Dropping it would give 2/3.
    assert metrics.binary_f1([1, 1, 0, 0], [1, -1, 1, 0])["f1"] == pytest.approx(50.0)
    # On a negative target it becomes a false positive: tp=1, fp=1, fn=0 -> 2/3.
    assert metrics.binary_f1([1, 0], [1, -1])["f1"] == pytest.approx(200 / 3)


def test_macro_f1_averages_every_class_including_ones_never_predicted_right():
    # Per-class F1: class 0 = 2/3, class 1 = 2/3, class 2 = 0 (its one example predicted invalid).
    score = metrics.macro_f1([0, 0, 1, 2], [0, 1, 1, -1], num_classes=3)
    assert score["macro_f1"] == pytest.approx(100 * 4 / 9)


def test_matthews_corrcoef_of_a_known_confusion_matrix():
    # tp=3, fn=1, tn=2, fp=1: (3*2 - 1*1) / sqrt(4*4*3*3) = 5/12.
    targets = [1, 1, 1, 1, 0, 0, 0]
    predictions = [1, 1, 1, 0, 0, 0, 1]
    assert metrics.matthews_corrcoef(targets, predictions)["matthews_corrcoef"] == pytest.approx(500 / 12)


def test_pearson_is_linear_and_spearman_is_rank_correlation():
    linear = metrics.pearson_spearman([1, 2, 3, 4], [2, 4, 6, 8])
    assert linear["pearson_corrcoef"] == pytest.approx(100)
    squares = metrics.pearson_spearman([1, 2, 3, 4], [1, 4, 9, 16])
    assert squares["spearman_corrcoef"] == pytest.approx(100)
    # cov = 25, sum of squared deviations 5 and 129.
    assert squares["pearson_corrcoef"] == pytest.approx(100 * 25 / math.sqrt(5 * 129))


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The  Cat's hat!", "cats hat"),
        ("an Apple, a day", "apple day"),
        ("Theory of the\tmind.", "theory of mind"),
        ("A", ""),
    ],
)
def test_squad_normalisation(text, normalized):
    assert metrics.normalize_answer(text) == normalized


def test_squad_takes_the_best_reference_answer_then_averages_examples():
    targets = [["Eiffel Tower in Paris", "the Eiffel Tower!"], ["Barack Obama"]]
    predictions = ["eiffel tower", "President Obama"]
    scores = metrics.squad(targets, predictions)
    # Example 1 matches its second answer exactly; example 2 shares one of two tokens: F1 1/2.
    assert scores == {"em": pytest.approx(50.0), "f1": pytest.approx(75.0)}
    assert metrics.squad([[]], ["anything"]) == {"em": 0.0, "f1": 0.0}


def test_rouge_of_known_overlap():
    scores = metrics.rouge(["the cat sat on the mat"], ["the cat sat"])
    # Unigrams: precision 3/3, recall 3/6. Bigrams: precision 2/2, recall 2/5. The LCS is the 3 predicted words.
    assert scores["rouge1"] == pytest.approx(100 * 2 / 3)
    assert scores["rouge2"] == pytest.approx(100 * 2 * 0.4 / 1.4)
    assert scores["rougeLsum"] == pytest.approx(100 * 2 / 3)


def test_rouge_lsum_matches_sentence_by_sentence():
    # As one sequence the longest common subsequence is half the words; sentence by sentence every word matches.
    assert metrics.rouge(["alpha beta. gamma delta."], ["gamma delta. alpha beta."])["rougeLsum"] == pytest.approx(100)


def test_bleu_of_identical_text_is_100():
    sentences = ["the quick brown fox jumps over the lazy dog", "a second sentence of five words"]
    assert metrics.bleu(sentences, sentences)["bleu"] == pytest.approx(100)


def test_bleu_of_known_ngram_overlap():
    # n-gram precisions 5/6, 3/5, 2/4, 1/3 with equal lengths (no brevity penalty): geometric mean 12 ** -1/4.
    score = metrics.bleu(["the cat sat on the mat"], ["the cat sat on a mat"])["bleu"]
    assert score == pytest.approx(100 * 12**-0.25, abs=1e-6)


def test_bleu_rejects_unpaired_inputs():
    with pytest.raises(ValueError, match="2 targets but 1 predictions"):
        metrics.bleu(["a b c d", "e f g h"], ["a b c d"])


def test_grouped_metrics_read_values_and_groups():
    targets = [{"group": "q1", "value": 1}, {"group": "q1", "value": 0}, {"group": "q2", "value": 1}]
    predictions = [{"value": 1}, {"value": 1}, {"value": 1}]
    assert metrics.on_values(metrics.accuracy)(targets, predictions)["accuracy"] == pytest.approx(200 / 3)
    # q1 has one wrong answer, so only q2 counts as an exact match.
    assert metrics.group_exact_match(targets, predictions) == {"exact_match": 50.0}
