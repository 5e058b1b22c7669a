"""Appearance-invariant prompts (VMC, "Appearance-invariant prompts").

While tuning the temporal attention layers VMC describes the clip with a
prompt that keeps only the subject and its motion ("A bird is flying above a
lake in the forest" -> "A bird is flying"), so that the background is not
bound into the learned motion.

:func:`appearance_invariant` derives such a prompt from a full one with a few
deterministic rules (no language model, no downloads):

1. time-of-day phrases ("at night", "at sunset", "in the morning",
   "during the day") are removed wherever they occur;
2. the prompt is split at commas/semicolons; the clause holding the action is
   kept, leading place/context clauses ("In the forest, ...") and trailing
   context clauses (", underwater", ", in Van Gogh style", ", 4k") are dropped;
   a trailing clause that is itself an action (", wagging its tail") is kept;
3. inside the kept clauses everything from the first place/background
   preposition AFTER the action (above/in/on/under/next to ...) is dropped;
   prepositions before the verb describe the subject and stay
   ("a man in a red shirt is dancing on the stage" -> "a man in a red shirt
   is dancing");
4. trailing context adverbs ("underwater", "outdoors") and dangling
   conjunctions are removed, whitespace collapsed, the original casing and a
   final "." (or "!"/"?") kept.

This module is on the CLI's fast path: standard library only.
"""

from __future__ import annotations

import re

__all__ = ["appearance_invariant"]

# Prepositions that introduce where the action happens or what surrounds it.
_PLACE_PREPS = frozenset(
    """
    in on at above over under below beneath underneath across through near
    beside besides by behind along alongside around among amongst amid amidst
    inside into onto within atop upon against between beyond past throughout
    outside toward towards from via during
    """.split()
)
# Two-word openers whose first word is not a place preposition by itself.
_PLACE_PREP_PAIRS = frozenset({("next", "to"), ("close", "to"), ("far", "from"), ("out", "of")})

_AUXILIARIES = frozenset(
    "is are was were am be being been isn't aren't wasn't weren't not "
    "does do did can could will would may might must shall should".split()
)
_VERB_AUX = frozenset("is are was were am isn't aren't wasn't weren't".split())

# Common motion verbs for prompts without an auxiliary ("sharks swim in the sea").
_MOTION_VERBS = frozenset(
    """
    swim swims fly flies run runs walk walks jump jumps dance dances move moves
    fall falls roll rolls ride rides drive drives play plays rotate rotates
    spin spins turn turns skate skates surf surfs ski skis climb climbs crawl
    crawls float floats glide glides hop hops race races rush rushes sail sails
    slide slides sway sways wave waves roar roars bark barks sing sings eat
    eats drink drinks sit sits stand stands sleep sleeps shake shakes swing
    swings bounce bounces march marches gallop gallops trot trots leap leaps
    dive dives drift drifts flow flows blow blows burn burns splash splashes
    """.split()
)
# Words ending in "-ing" that are (usually) nouns, not actions.
_ING_NOUNS = frozenset(
    """
    morning evening ceiling building king ring thing something nothing
    anything everything string wing spring swing sling lighting painting
    drawing rendering clothing setting ending background pudding wedding
    sibling duckling darling ping bling sing ding
    """.split()
)
# Single words that only say where something happens.
_CONTEXT_WORDS = frozenset(
    """
    underwater outdoors indoors outside inside overhead upstairs downstairs
    nearby offshore abroad outdoor indoor here there everywhere
    """.split()
)
_DANGLING = frozenset("and or but while with then the a an as of to".split())

_TIME_NOUNS = (
    r"night|nighttime|night\s+time|midnight|sunset|sunrise|dawn|dusk|noon|"
    r"midday|morning|afternoon|evening|day|daytime|daylight|twilight|"
    r"golden\s+hour|blue\s+hour"
)
_TIME_RE = re.compile(
    r"\b(?:at|during|in|by)\s+(?:the\s+|a\s+)?(?:early\s+|late\s+)?(?:" + _TIME_NOUNS + r")\b",
    re.IGNORECASE,
)
_FINAL_PUNCT_RE = re.compile(r"[.!?]+$")
_WORD_STRIP = ".,;:!?\"'()[]"


def _norm(word: str) -> str:
    return word.strip(_WORD_STRIP).lower()


def _is_action_word(word: str) -> bool:
    w = _norm(word)
    if w in _MOTION_VERBS:
        return True
    return len(w) > 4 and w.endswith("ing") and w not in _ING_NOUNS


def _anchor(words: list[str]) -> int | None:
    """Index of the word after which the action starts, or None (no verb found).

    With an auxiliary ("is", "are being") it is the last word of the
    auxiliary run; without one, the word before the first action word
    ("flying", "swim").  :func:`_cut_after` only cuts at a preposition that
    comes after at least one content word following the anchor.
    """
    norm = [_norm(w) for w in words]
    for i, w in enumerate(norm):
        if w in _VERB_AUX and i > 0:
            j = i
            while j + 1 < len(norm) and norm[j + 1] in _AUXILIARIES:
                j += 1
            return j
    for i, w in enumerate(words):
        if i > 0 and _is_action_word(w):
            return i - 1  # the action word itself is content after the anchor
    return None


def _is_place_prep(norm: list[str], i: int) -> bool:
    if norm[i] in _PLACE_PREPS:
        return True
    return i + 1 < len(norm) and (norm[i], norm[i + 1]) in _PLACE_PREP_PAIRS


def _cut_after(words: list[str], anchor: int) -> list[str]:
    """Drop everything from the first place preposition after ``anchor``."""
    norm = [_norm(w) for w in words]
    for i in range(anchor + 2, len(words)):
        if _is_place_prep(norm, i):
            width = 2 if (i + 1 < len(norm) and (norm[i], norm[i + 1]) in _PLACE_PREP_PAIRS) else 1
            if i + width < len(words):  # a phrase follows: "over the lake", not "turning around"
                return words[:i]
    return words


def _trim_tail(words: list[str], keep: int) -> list[str]:
    """Remove trailing context adverbs / dangling words, keeping ``keep`` words."""
    while len(words) > keep and (
        _norm(words[-1]) in _CONTEXT_WORDS or _norm(words[-1]) in _DANGLING or not _norm(words[-1])
    ):
        words = words[:-1]
    return words


def _clause_has_action(words: list[str]) -> bool:
    return _anchor(words) is not None


def _is_context_clause(words: list[str]) -> bool:
    if not words:
        return True
    norm = [_norm(w) for w in words]
    if _is_place_prep(norm, 0):
        return True
    return all(w in _CONTEXT_WORDS for w in norm if w)


def _is_trailing_action(words: list[str]) -> bool:
    """A clause after the main one that continues the action.

    ", wagging its tail" / ", and jumps" continue the action; ", waves
    crashing" or ", cinematic lighting" are context.  A bare verb from the
    motion list only counts after "and"/"then" (it is too often a noun).
    """
    if _norm(words[0]) in ("and", "then") and len(words) > 1:
        return _is_action_word(words[1])
    w = _norm(words[0])
    return w not in _MOTION_VERBS and _is_action_word(words[0])


def appearance_invariant(prompt: str) -> str:
    """Return the appearance-invariant version of ``prompt`` (subject + action).

    >>> appearance_invariant("A bird is flying above a lake in the forest")
    'A bird is flying'
    >>> appearance_invariant("a cat is roaring on the grass under the tree")
    'a cat is roaring'
    >>> appearance_invariant("pills are falling.")
    'pills are falling.'
    """
    original = " ".join(str(prompt).split())
    if not original:
        return str(prompt).strip()

    text = original
    match = _FINAL_PUNCT_RE.search(text)
    final = match.group(0) if match else ""
    if final:
        text = text[: match.start()]

    text = _TIME_RE.sub(" ", text)
    clauses = [c.split() for c in re.split(r"[,;]", text)]
    clauses = [c for c in clauses if c]

    # The clause holding the action (the first one with a verb).
    action_idx = next((k for k, c in enumerate(clauses) if _clause_has_action(c)), None)

    kept: list[list[str]] = []
    if action_idx is None:
        # No recognisable verb: keep the first non-context clause, cut places in it.
        for c in clauses:
            if not _is_context_clause(c):
                kept.append(_trim_tail(_cut_after(c, 0), 1))
                break
    else:
        # Leading clauses that are part of the subject ("a dog, a cat and a bird are ...").
        for c in clauses[:action_idx]:
            if not _is_context_clause(c):
                kept.append(c)
        main = clauses[action_idx]
        anchor = _anchor(main)
        kept.append(_trim_tail(_cut_after(main, anchor), anchor + 1))
        # Trailing clauses: keep further actions (", wagging its tail"), drop context.
        for c in clauses[action_idx + 1 :]:
            if _is_trailing_action(c):
                first = 1 if _norm(c[0]) in ("and", "then") else 0
                # c[first] is the action word: cut places after it.
                kept.append(_trim_tail(_cut_after(c, first - 1), first + 1))
            else:
                break

    kept = [c for c in kept if c]
    result = ", ".join(" ".join(c) for c in kept)
    result = " ".join(result.split()).strip(" ,;:")
    if not result:
        return original
    return result + final
