"""Evaluation metrics with SeqIO's ``fn(targets, predictions) -> {name: score}`` signature.

Targets and predictions arrive already postprocessed (label ids, floats, answer lists or text). Scores are
percentages (x100), as T5 reports them. Classification predictions the postprocessor could not map to a label
arrive as -1 and count as wrong.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sacrebleu
import scipy.stats
import sklearn.metrics
from rouge_score import rouge_scorer

MetricFn = Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]

_ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def accuracy(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    return {"accuracy": 100 * float(np.mean([t == p for t, p in zip(targets, predictions, strict=True)]))}


def binary_f1(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """F1 of the positive class (1); an invalid prediction is scored as the wrong label, not dropped."""
    fixed = [p if p in (0, 1) else 1 - t for t, p in zip(targets, predictions, strict=True)]
    return {"f1": 100 * sklearn.metrics.f1_score(targets, fixed, zero_division=0.0)}


def macro_f1(targets: Sequence[int], predictions: Sequence[int], *, num_classes: int) -> dict[str, float]:
    """Unweighted mean of per-class F1 over classes ``0..num_classes-1``, as SuperGLUE scores CB.

    Bind ``num_classes`` (``functools.partial``) so a class missing from a small eval set still counts.
    """
    score = sklearn.metrics.f1_score(
        targets, predictions, labels=list(range(num_classes)), average="macro", zero_division=0.0
    )
    return {"macro_f1": 100 * score}


def matthews_corrcoef(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    return {"matthews_corrcoef": 100 * sklearn.metrics.matthews_corrcoef(targets, predictions)}


def pearson_spearman(targets: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Correlations of predicted and gold scores; NaN when either side is constant (correlation undefined)."""
    return {
        "pearson_corrcoef": 100 * float(scipy.stats.pearsonr(targets, predictions).statistic),
        "spearman_corrcoef": 100 * float(scipy.stats.spearmanr(targets, predictions).statistic),
    }


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """Exact match and token F1, each the best over an example's reference answers, averaged over examples.

    An example without reference answers (an unlabelled test split) scores 0.
    """
    pairs = list(zip(targets, predictions, strict=True))
    em = [max((normalize_answer(p) == normalize_answer(a) for a in answers), default=False) for answers, p in pairs]
    f1 = [max((_token_f1(p, a) for a in answers), default=0.0) for answers, p in pairs]
    return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}


def _lines_per_sentence(text: str) -> str:
    # ROUGE-Lsum scores sentence by sentence and reads sentences as lines; model output has no newlines.
    return _SENTENCE_BREAK.sub("\n", text.strip())


def rouge(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-Lsum F-measures (Porter-stemmed), as T5 reports for summarisation."""
    scorer = rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True)
    scores = [
        scorer.score(_lines_per_sentence(t), _lines_per_sentence(p)) for t, p in zip(targets, predictions, strict=True)
    ]
    return {key: 100 * float(np.mean([s[key].fmeasure for s in scores])) for key in _ROUGE_TYPES}


def bleu(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU against one reference per example, with sacrebleu's "intl" tokenizer as T5 uses for WMT."""
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
    return {"bleu": sacrebleu.metrics.BLEU(tokenize="intl").corpus_score(list(predictions), [list(targets)]).score}


def on_values(metric_fn: MetricFn) -> MetricFn:
    """Applies ``metric_fn`` to the ``"value"`` of grouped targets and predictions (see ``group_exact_match``)."""

    def metric(targets: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        return metric_fn([t["value"] for t in targets], [p["value"] for p in predictions])

    return metric


def group_exact_match(
    targets: Sequence[Mapping[str, Any]], predictions: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Share of groups (targets' ``"group"``, e.g. a MultiRC question) whose every prediction is right."""
    correct: dict[Any, bool] = {}
    for t, p in zip(targets, predictions, strict=True):
        correct[t["group"]] = correct.get(t["group"], True) and t["value"] == p["value"]
    return {"exact_match": 100 * float(np.mean(list(correct.values())))}
