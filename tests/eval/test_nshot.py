"""N-shot prompting and scoring: prompt text, demonstration draws, log-likelihoods equal to transformers' T5 on
the same weights, the three multiple-choice rankings, generation scored by EM/F1, and bad requests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import seqio
import torch
import transformers
from flax import nnx

from t5x_tl.data.curriculum.execute import tasks as lte_tasks
from t5x_tl.errors import UserError
from t5x_tl.eval import metrics, nshot
from t5x_tl.eval.prompts import Template, demonstration_indices, shuffled_labels
from t5x_tl.eval.scoring import Scorer
from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.hf_convert import config_from_hf, params_from_hf
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
BYTES = seqio.ByteVocabulary()
TEMPLATE = Template(question="Q {inputs} A", answer=" {targets}", separator=", ", instruction="Say it")
POOL = [{"inputs": f"x{i}", "targets": "yes" if i % 2 else "no"} for i in range(12)]


def _small(**overrides):
    return t5_config("tiny", 384, d_model=32, d_ff=64, num_heads=4, d_kv=8, **overrides)


@pytest.fixture(scope="module")
def decoder() -> DecoderOnly:
    return DecoderOnly(_small(), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def hf_pair() -> tuple[torch.nn.Module, EncoderDecoder]:
    cfg = transformers.T5Config(
        vocab_size=384, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=2, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    reference = transformers.T5ForConditionalGeneration(cfg).eval()
    ours_cfg = config_from_hf(reference.config.to_dict(), dropout_rate=0.0)
    graphdef, _ = nnx.split(EncoderDecoder(ours_cfg, rngs=nnx.Rngs(1)))
    params = params_from_hf({k: v.numpy() for k, v in reference.state_dict().items()}, ours_cfg)
    return reference, nnx.merge(graphdef, params)


def test_prompt_text_follows_the_template():
    demos = POOL[:2]
    assert TEMPLATE.context(demos, POOL[5]) == "Say it, Q x0 A no, Q x1 A yes, Q x5 A"
    assert TEMPLATE.context([], POOL[5]) == "Say it, Q x5 A"
    assert Template().context([POOL[0]], POOL[1]) == "x0 no x1"


def test_demonstrations_are_seeded_distinct_and_never_the_query():
    first = demonstration_indices(12, 5, seed=3, query_index=4, exclude=4)
    assert first == demonstration_indices(12, 5, seed=3, query_index=4, exclude=4)
    assert len(set(first)) == 5 and 4 not in first
    assert any(demonstration_indices(12, 5, seed=s, query_index=4, exclude=4) != first for s in (4, 5, 6))
    assert any(demonstration_indices(12, 5, seed=3, query_index=i) != first for i in (5, 6, 7))
    every = demonstration_indices(12, 11, seed=0, query_index=7, exclude=7)
    assert sorted(every) == [i for i in range(12) if i != 7]
    with pytest.raises(UserError, match="K=12 demonstrations but the pool holds only 11"):
        demonstration_indices(12, 12, seed=0, query_index=0, exclude=0)
    with pytest.raises(UserError, match="K must be 0 or more"):
        demonstration_indices(12, -1, seed=0, query_index=0)


def test_shuffled_labels_keep_the_answers_but_break_the_pairing():
    demos = POOL[:10]
    shuffled = shuffled_labels(demos, "targets", seed=0)
    assert [d["inputs"] for d in shuffled] == [d["inputs"] for d in demos]
    assert sorted(d["targets"] for d in shuffled) == sorted(d["targets"] for d in demos)
    assert [d["targets"] for d in shuffled] != [d["targets"] for d in demos]


def _decoder_log_likelihood(model: DecoderOnly, context: str, answer: str) -> float:
    context_ids, answer_ids = BYTES.encode(context), BYTES.encode(answer)
    sequence = np.array([[0, *context_ids, *answer_ids]], np.int32)
    log_probs = np.asarray(nnx.log_softmax(model(sequence[:, :-1]), axis=-1))[0]
    positions = range(len(context_ids), len(context_ids) + len(answer_ids))
    return float(sum(log_probs[p, sequence[0, p + 1]] for p in positions))


def test_decoder_only_log_likelihoods_equal_teacher_forcing_whatever_the_batch(decoder):
    contexts = ["Q x1 A", "Say it, Q x22 A no, Q x3 A", "Q x5 A"]
    answers = [" yes", " no", " maybe so"]
    expected = [_decoder_log_likelihood(decoder, c, a) for c, a in zip(contexts, answers, strict=True)]
    for batch_size in (2, 16):
        scored = Scorer(decoder, BYTES, batch_size=batch_size, progress=False).log_likelihoods(contexts, answers)
        np.testing.assert_allclose(scored[:, 0], expected, rtol=2e-5, atol=2e-5)
        np.testing.assert_array_equal(scored[:, 1], [4, 3, 9])


def test_encoder_decoder_log_likelihoods_equal_transformers(hf_pair):
    reference, ours = hf_pair
    contexts, answers = ["Q x1 A", "Say it, Q x22 A no, Q x3 A"], [" yes", " no way"]
    scored = Scorer(ours, BYTES, batch_size=4, progress=False).log_likelihoods(contexts, answers)
    for row, (context, answer) in enumerate(zip(contexts, answers, strict=True)):
        inputs = torch.tensor([[*BYTES.encode(context), 1]])
        labels = torch.tensor([[*BYTES.encode(answer), 1]])  # T5 scores its target with EOS
        with torch.no_grad():
            mean_nll = reference(input_ids=inputs, labels=labels).loss.item()
        assert scored[row, 1] == labels.shape[1]
        np.testing.assert_allclose(scored[row, 0], -mean_nll * labels.shape[1], rtol=1e-4)


def test_the_three_rankings_follow_their_definitions(decoder):
    spec = nshot.NShotSpec(shots=(0, 2), seed=1, template=TEMPLATE, choices=("no", "yes"), unconditional_context="A")
    queries = POOL[:6]
    report = nshot.evaluate(Scorer(decoder, BYTES, progress=False), queries, spec, pool=POOL, name="toy")
    assert report.mode == "multiple_choice" and [r.k for r in report.results] == [0, 2]
    scorer = Scorer(decoder, BYTES, progress=False)
    bare = scorer.log_likelihoods(["A", "A"], [" no", " yes"])[:, 0]
    for result in report.results:
        hits = {name: 0 for name in nshot.RANKINGS}
        for record, query in zip(result.examples, queries, strict=True):
            assert record["prompt"].startswith("Say it, ") and record["prompt"].endswith(f"Q {query['inputs']} A")
            assert record["prompt"].count(" A ") == result.k  # the demonstrations' answers
            scores = scorer.log_likelihoods([record["prompt"]] * 2, [" no", " yes"])
            np.testing.assert_allclose(list(record["log_likelihoods"].values()), scores[:, 0], rtol=1e-5)
            expected = {
                "total": scores[:, 0],
                "per_token": scores[:, 0] / scores[:, 1],
                "unconditional": scores[:, 0] - bare,
            }
            for name, values in expected.items():
                pick = spec.choices[int(np.argmax(values))]
                assert record["predictions"][name] == pick
                hits[name] += pick == query["targets"]
        for name in nshot.RANKINGS:
            assert result.metrics[f"accuracy_{name}"] == pytest.approx(100 * hits[name] / len(queries))


def test_a_query_drawn_from_its_own_pool_never_demonstrates_itself(decoder):
    spec = nshot.NShotSpec(shots=(11,), template=TEMPLATE, choices=("no", "yes"))
    report = nshot.evaluate(Scorer(decoder, BYTES, progress=False), POOL, spec, pool=POOL)
    for query, record in zip(POOL, report.results[0].examples, strict=True):
        demonstrated = record["prompt"].split(", ")[1:-1]
        assert f"Q {query['inputs']} A {query['targets']}" not in demonstrated
        assert len(demonstrated) == 11


def test_generation_is_scored_by_exact_match_and_f1(decoder, tmp_path):
    scorer = Scorer(decoder, BYTES, batch_size=4, progress=False)
    spec = nshot.NShotSpec(shots=(1,), template=TEMPLATE, max_decode_length=6)
    queries = [{"inputs": q["inputs"], "targets": "placeholder"} for q in POOL[:5]]
    first = nshot.evaluate(scorer, queries, spec, pool=POOL, name="gen")
    predictions = [r["prediction"] for r in first.results[0].examples]
    assert first.mode == "generation" and all("," not in p for p in predictions)  # cut at the separator
    own = [{"inputs": q["inputs"], "targets": p} for q, p in zip(queries, predictions, strict=True)]
    report = nshot.evaluate(scorer, own, spec, pool=POOL, name="gen")
    assert report.results[0].metrics == metrics.squad([[p] for p in predictions], predictions)
    assert report.results[0].metrics["em"] == 100.0
    assert first.results[0].metrics["em"] == 0.0  # "placeholder" was never generated
    nshot.write_report(report, tmp_path)
    assert json.loads((tmp_path / "nshot.json").read_text())["results"][0]["metrics"]["em"] == 100.0
    assert "| 1 | 100.0 |" in (tmp_path / "nshot.md").read_text()


def test_examples_of_a_seqio_task_are_its_text():
    name = lte_tasks.register("addition", 2)
    examples = nshot.task_examples(name, "validation", limit=5)
    assert len(examples) == 5 and all(e["inputs"].startswith("print(") for e in examples)
    assert all(str(eval(e["inputs"][6:-1])) == e["targets"] for e in examples)
    with pytest.raises(UserError, match="not a registered SeqIO task"):
        nshot.task_examples("no_such_task", "validation")
    with pytest.raises(UserError, match="has no split 'dev'"):
        nshot.task_examples(name, "dev")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(shots=(13,)), "K=13 demonstrations but the pool holds only 12"),
        (dict(shots=()), "must list one or more K"),
        (dict(template=Template(question="{question}")), r"template fields \['question'\] are missing"),
        (dict(template=Template(answer=" the answer")), "must hold exactly one field"),
        (dict(choices=("no", "no")), "repeat an answer"),
        (dict(choices=("maybe", "perhaps")), "is not among the choices"),
        (dict(choices=("no", ""), template=Template(answer="{targets}")), "tokenizes to nothing"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(decoder, change, message):
    spec = nshot.NShotSpec(**{**dict(shots=(1,), choices=("no", "yes")), **change})
    queries = [dict(q, targets="no") for q in POOL[:2]]
    with pytest.raises(UserError, match=message):
        nshot.evaluate(Scorer(decoder, BYTES, progress=False), queries, spec, pool=POOL)


def test_an_empty_answer_list_or_a_prompt_beyond_the_context_is_refused(decoder):
    scorer = Scorer(decoder, BYTES, progress=False, max_context_tokens=40)
    spec = nshot.NShotSpec(shots=(0,))
    with pytest.raises(UserError, match="empty answer list"):
        nshot.evaluate(scorer, [{"inputs": "a", "targets": "b", "choices": []}], spec, pool=POOL)
    long = nshot.NShotSpec(shots=(8,), template=TEMPLATE, choices=("no", "yes"))
    with pytest.raises(UserError, match=r"beyond max_context_tokens=40 .* use fewer demonstrations"):
        nshot.evaluate(scorer, POOL[:2], long, pool=POOL)
    with pytest.raises(UserError, match="no examples"):
        nshot.evaluate(scorer, [], long, pool=POOL)


def test_the_script_evaluates_a_hugging_face_directory_and_writes_its_report(hf_pair, tmp_path):
    reference, _ = hf_pair
    reference.save_pretrained(tmp_path / "hf")
    command = [
        sys.executable, str(SCRIPTS / "nshot_eval.py"), f"--hf_dir={tmp_path / 'hf'}", "--task=lte_addition_l1",
        "--task_modules", "t5x_tl.data.curriculum.execute.tasks", "--num_examples=6", "--demo_pool=20", "--shots=0,2",
        "--max_decode_length=4", f"--out={tmp_path / 'out'}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "nshot.json").read_text())
    assert report["mode"] == "generation" and [r["k"] for r in report["results"]] == [0, 2]
    assert all(len(r["examples"]) == 6 for r in report["results"])
    assert report["results"][1]["examples"][0]["prompt"].count("print(") == 3
    bad = subprocess.run([*command[:3], "--task=lte_addition_l1",
                          "--task_modules", "t5x_tl.data.curriculum.execute.tasks",
                          "--shots=30", "--demo_pool=20", f"--out={tmp_path / 'bad'}"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "K=30 demonstrations but the pool holds only 20" in bad.stderr
    assert not (tmp_path / "bad").exists()
