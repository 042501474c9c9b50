"""Log-likelihoods of text continuations, and greedy continuations, for prompted evaluation.

A decoder-only model reads the context as its prefix and scores the continuation after it (GPT-3's setting); an
encoder-decoder reads the context in its encoder (with EOS, as T5's inputs are) and scores the continuation as
its target (with EOS, as T5's targets are). Requests are tokenized once, padded to one shape for the whole
evaluation (context length rounded up to 32 tokens, continuation to 8, a fixed batch) so that one compiled
program serves every batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import seqio
from flax import nnx
from tqdm import tqdm

from t5x_tl.errors import UserError
from t5x_tl.models import decoding
from t5x_tl.models.decoder_only import DecoderOnly


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def _padded(rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


@dataclasses.dataclass
class Scorer:
    """Scores and continues text with ``model``; ``max_context_tokens`` bounds a context (longer ones are refused,
    never silently cut)."""

    model: nnx.Module
    vocabulary: seqio.Vocabulary
    batch_size: int = 16
    max_context_tokens: int = 2048
    progress: bool = True

    @property
    def decoder_only(self) -> bool:
        return isinstance(self.model, DecoderOnly)

    def context_ids(self, texts: Sequence[str]) -> list[list[int]]:
        eos = [] if self.decoder_only else [decoding.EOS_ID]
        ids = [list(self.vocabulary.encode(text)) + eos for text in texts]
        longest = max(range(len(ids)), key=lambda i: len(ids[i]))
        if len(ids[longest]) > self.max_context_tokens:
            raise UserError(
                f"a prompt is {len(ids[longest])} tokens, beyond max_context_tokens={self.max_context_tokens} "
                f"(it starts {texts[longest][:80]!r}); use fewer demonstrations (K) or raise max_context_tokens"
            )
        return ids

    def continuation_ids(self, texts: Sequence[str]) -> list[list[int]]:
        eos = [] if self.decoder_only else [decoding.EOS_ID]
        ids = [list(self.vocabulary.encode(text)) for text in texts]
        for text, row in zip(texts, ids, strict=True):
            if not row:
                raise UserError(f"answer {text!r} tokenizes to nothing, so it has no likelihood to score")
        return [row + eos for row in ids]

    def _batches(self, count: int, desc: str):
        starts = range(0, count, self.batch_size)
        return tqdm(starts, desc=desc, unit="batch", disable=not self.progress, leave=False)

    def log_likelihoods(self, contexts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """``N x 2``: each continuation's total log-likelihood given its context, and its number of tokens."""
        if len(contexts) != len(continuations):
            raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
        if not contexts:
            return np.zeros((0, 2))
        context_ids, answer_ids = self.context_ids(contexts), self.continuation_ids(continuations)
        context_len = _round_up(max(map(len, context_ids)), 32)
        answer_len = _round_up(max(map(len, answer_ids)), 8)
        out = np.zeros((len(contexts), 2))
        for start in self._batches(len(contexts), "score"):
            rows = slice(start, start + self.batch_size)
            prompts, answers = context_ids[rows], answer_ids[rows]
            filler = self.batch_size - len(prompts)  # the last batch repeats its first row: same shape, one program
            prompts, answers = prompts + [prompts[0]] * filler, answers + [answers[0]] * filler
            total, _ = decoding.score(
                self.model, jnp.asarray(_padded(prompts, context_len)), jnp.asarray(_padded(answers, answer_len))
            )
            count = len(context_ids[rows])
            out[rows, 0] = np.asarray(total)[:count]
            out[rows, 1] = [len(a) for a in answer_ids[rows]]
        return out

    def continue_greedily(self, contexts: Sequence[str], max_length: int, stop: str = "") -> list[str]:
        """Each context's greedy continuation of up to ``max_length`` tokens, until EOS or the text ``stop``."""
        context_ids = self.context_ids(contexts)
        context_len = _round_up(max(map(len, context_ids)), 32)
        texts: list[str] = []
        for start in self._batches(len(contexts), "generate"):
            prompts = context_ids[start : start + self.batch_size]
            count = len(prompts)
            prompts = prompts + [prompts[0]] * (self.batch_size - count)
            tokens = np.asarray(
                decoding.greedy_decode(self.model, jnp.asarray(_padded(prompts, context_len)), max_length)
            )
            for row in tokens[:count]:
                ends = np.flatnonzero(row == decoding.EOS_ID)
                text = self.vocabulary.decode(row[: ends[0] if ends.size else len(row)].tolist())
                texts.append(text.split(stop)[0] if stop else text)
        return [t.strip() for t in texts]
