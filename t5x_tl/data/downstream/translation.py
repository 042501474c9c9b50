"""Translation (WMT-like) from English fact sentences into a rule-based second language, "Synthetic".

Synthetic has its own lexicon, a generated pseudo-word per English word, and its own order: the verb comes last
(subject, complement, postposition, verb), adjectives follow their noun, determiners end the noun phrase, and
plural nouns take a suffix. Names and numbers stay as they are. The lexicon covers exactly the words the fact
sentences of a world use, one pseudo-word each, so every sentence translates and no two words merge.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping

from t5x_tl.data.corpus.world import Entity, World
from t5x_tl.data.downstream.generators import (
    Clause,
    Example,
    Family,
    Maker,
    Phrase,
    capitalise,
    english,
    facts_of,
    stable_rng,
    statement,
)

PLURAL_SUFFIX = "ek"
PREFIX = "translate English to Synthetic "
_MAX_SENTENCES = 2
_ONSETS = ("", "k", "t", "p", "m", "n", "s", "l", "r", "v", "z", "sh")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "k", "s")
_CLASHES_PER_SYLLABLE = 8  # redraws before a word gets a syllable longer


def _pseudo_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))


def generate_lexicon(vocabulary: Iterable[str], seed: int) -> dict[str, str]:
    """English word -> pseudo-word, one to one; longer words get longer pseudo-words.

    Each word's draws are seeded by the word itself, so a word keeps its translation when the vocabulary grows,
    unless its draw clashes with a word's before it (sorted order), when it draws again.
    """
    lexicon: dict[str, str] = {}
    used: set[str] = set()
    for word in sorted(set(vocabulary)):
        rng = stable_rng(seed, "lexicon", word)
        for attempt in itertools.count():
            candidate = _pseudo_word(rng, 1 + len(word) // 4 + attempt // _CLASHES_PER_SYLLABLE)
            if candidate not in used:
                break
        lexicon[word] = candidate
        used.add(candidate)
    return lexicon


def clause_words(clause: Clause) -> list[str]:
    """The English words of a clause that take a translation: all but names and numbers."""
    words = [*clause.verb, clause.preposition]
    for phrase in (clause.subject, clause.complement):
        words += [*phrase.adjectives, *([] if phrase.proper else phrase.head), phrase.determiner]
    return [w for w in words if w and not w.isdigit()]


def _word(word: str, lexicon: Mapping[str, str]) -> str:
    return word if word.isdigit() else lexicon[word]


def _phrase(phrase: Phrase, lexicon: Mapping[str, str]) -> list[str]:
    """Noun, adjectives, determiner; a proper noun is kept, a plural one takes the suffix."""
    head = list(phrase.head) if phrase.proper else [lexicon[w] for w in phrase.head]
    if phrase.plural:
        head[-1] += PLURAL_SUFFIX
    determiner = [_word(phrase.determiner, lexicon)] if phrase.determiner else []
    return [*head, *(lexicon[w] for w in phrase.adjectives), *determiner]


def translate(clause: Clause, lexicon: Mapping[str, str]) -> str:
    """The clause in Synthetic: subject, complement, postposition, verb."""
    postposition = [lexicon[clause.preposition]] if clause.preposition else []
    words = [
        *_phrase(clause.subject, lexicon),
        *_phrase(clause.complement, lexicon),
        *postposition,
        *(lexicon[w] for w in clause.verb),
    ]
    return capitalise(" ".join(words)) + "."


def world_lexicon(world: World) -> dict[str, str]:
    """The lexicon of every word the fact sentences of `world` can use."""
    clauses = (statement(world, e, key, value) for e in world.entities for key, value in facts_of(world, e).items())
    return generate_lexicon((w for c in clauses for w in clause_words(c)), world.seed)


def _maker(world: World) -> Maker:
    lexicon = world_lexicon(world)

    def make(topic: Entity, rng: random.Random) -> Example:
        facts = facts_of(world, topic)
        keys = rng.sample(list(facts), rng.randint(1, _MAX_SENTENCES))
        clauses = [statement(world, topic, key, facts[key]) for key in keys]
        return {
            "inputs": PREFIX + " ".join(english(c) for c in clauses),
            "targets": " ".join(translate(c, lexicon) for c in clauses),
        }

    return make


FAMILY = Family("translation", _maker)
