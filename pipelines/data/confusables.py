"""Look-alike characters across scripts: the Unicode confusables skeleton and the mixed-script test.

A LoanId written with a Cyrillic 'А' or a Greek omicron looks exactly like its Latin twin to the
person who reads a report, so the duplicate check must compare ids by what they look like. UTS #39
defines that as the *skeleton*: every character replaced by the prototype of its confusable class.
The classes come from the confusables data bundled with ``confusable-homoglyphs`` (Unicode's
``confusables.txt``, stored there as a symmetric graph: a prototype lists every character that maps
to it, each such character lists its prototype).

Only non-ASCII characters are mapped. Printable ASCII ids are their own key on purpose: ``LOAN-10``
and ``LOAN-1O`` are two distinct ids of a bank's system, not one loan written twice. The one class
classes holding several ASCII characters ({l, I, 1, |}, {O, 0}) send a character to the ASCII member of
its own kind (a Cyrillic capital 'І' to 'I'). On top of the duplicate check, an id mixing Latin with
Cyrillic or Greek letters is quarantined by the mixed-script rule: no bank writes ids that way.
"""

from __future__ import annotations

import unicodedata
from functools import cache

# Scripts every id may use alongside any other (digits, punctuation, combining marks).
_NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})
# Script sets UTS #39 counts as "highly restrictive": each set together is one writing system.
_SINGLE_WRITING_SYSTEMS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_DIRECTION_MARKS = "\u200e\u200f"


@cache
def _prototypes() -> dict[str, str]:
    """Each single confusable character -> the prototype of its class (characters absent map to themselves).

    A character with one neighbour whose own list is longer maps to that neighbour, its prototype. Two
    characters that list only each other form a class of two whose prototype the graph no longer tells:
    one stands for both, which is all equality needs: the one NFKC keeps (ids are compared after NFKC, so
    a Kangxi radical never reaches here but its ideograph does), then the lower code point.
    """
    from confusable_homoglyphs.confusables import confusables_data

    def clean(text: str) -> str:
        return text.strip(_DIRECTION_MARKS)

    graph = {clean(c): [clean(e["c"]) for e in entries] for c, entries in confusables_data.items()}
    prototypes: dict[str, str] = {}
    for character, neighbours in graph.items():
        if len(character) != 1 or len(neighbours) != 1:
            continue
        (target,) = neighbours
        if len(graph.get(target, ())) > 1:
            prototypes[character] = target
        elif len(target) == 1:
            prototypes[character] = min(character, target,
                                        key=lambda c: (unicodedata.normalize("NFKC", c) != c, c))
    return prototypes


@cache
def _ascii_look_alikes() -> dict[str, str]:
    """Each confusable non-ASCII character -> the ASCII character a reader takes it for.

    That is its prototype when the prototype's class holds one ASCII character. A class such as
    {l, I, 1, |} or {O, 0} holds several, and the prototype alone would send a Cyrillic capital 'І' to
    'l': the ASCII member of the character's own kind (capital, small letter, digit) is taken instead,
    so 'І' reads as 'I' and a Bengali zero as '0'.
    """
    prototypes = _prototypes()
    ascii_members: dict[str, list[str]] = {}
    for character, prototype in prototypes.items():
        if character.isascii():
            ascii_members.setdefault(prototype, []).append(character)
    for prototype, members in ascii_members.items():
        if prototype.isascii() and len(prototype) == 1:
            members.append(prototype)
    look_alikes: dict[str, str] = {}
    for character, prototype in prototypes.items():
        if character.isascii():
            continue
        members = sorted(ascii_members.get(prototype, ()))
        same_kind = [m for m in members if _kind(m) == _kind(character)]
        look_alikes[character] = (same_kind or members or [prototype])[0]
    return look_alikes


def _kind(character: str) -> str:
    return "upper" if character.isupper() else "lower" if character.islower() else unicodedata.category(character)


def skeleton(text: str) -> str:
    """``text`` with every non-ASCII confusable replaced by the ASCII character it passes for, else by its
    prototype (ASCII kept as is)."""
    look_alikes = _ascii_look_alikes()
    return "".join(c if c.isascii() else look_alikes.get(c, c) for c in text)


def is_mixed_script(text: str) -> bool:
    """Whether the letters of ``text`` come from more than one writing system (UTS #39 highly restrictive)."""
    from confusable_homoglyphs.categories import unique_aliases

    scripts = unique_aliases(text) - _NEUTRAL_SCRIPTS
    return len(scripts) > 1 and not any(scripts <= system for system in _SINGLE_WRITING_SYSTEMS)
