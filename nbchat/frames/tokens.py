"""The token count that summaries are budgeted with, estimated offline.

A budget must hold for the tokenizer of whatever model reads the prompt, and a summary is
written before any request is made, with no tokenizer loaded: :func:`estimate_tokens` costs
text by rules that err high against the common byte-level BPE vocabularies, so a summary that
fits by this count fits a real tokenizer too.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN_PIECES = re.compile(
    r"(?P<letters>[A-Za-z]+)|(?P<digits>[0-9]+)|(?P<before_digit> +(?=[0-9]))|(?P<spaces> +)"
    r"|(?P<ascii>[\x00-\x7f])|(?P<other>[^\x00-\x7f])"
)
_WORD_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_CHEAP_SYMBOLS = frozenset("·…×→–")  # one token each in the common BPE vocabularies
# Words that cl100k and o200k both spend one token on, lowercase or capitalised, alone or after
# a space, "_", "(", "|" or "~" (checked against both vocabularies): the summaries' own words,
# dtype names and common column-name parts. Any other letters pay the random-string rate.
_ONE_TOKEN_WORDS = frozenset(  # a word list reads better as text than as 226 literals
    """
    a account actual address age all amount area array as at audio b balance batch binary
    birth bool boolean brand browser c category channel city class click close code col
    color column columns come comment complex cost count country created currency customer
    data date day delivery description device discount distance duplicate duration email
    end enum error event fail failed false feature features file first flag float for
    frame from full gender group has height high hour id image in income index info int
    interval is item its job key label labels lang language last lat lazy len length level
    levels library link list lon longitude loss low market max median member meta method
    middle min model month more name names not note null num number object of on open
    order ordered page path payment period phone platform postal preview price product
    profit qty quantity query random rate rating ratio region return returned returns
    review reviews role row rows run salary sales sample score second seed segment series
    session sex shape size source speed start state status step stock store str street
    string struct success tag tags target tax team test text the time timestamp title to
    top total train transaction true type types uint uniform unit units updated url user
    valid value values version video view week weight when width x y year z zip zone
    """.split()  # noqa: SIM905
)


@lru_cache(maxsize=65_536)
def _letter_tokens(run: str) -> int:
    """Tokens for a run of ASCII letters, split where the case changes (``camelCase``)."""
    total = 0
    for part in _WORD_PARTS.findall(run):
        if (part.islower() or part.istitle()) and part.lower() in _ONE_TOKEN_WORDS:
            total += 1
        elif part.isupper() and len(part) > 1:
            total += -(-len(part) * 7 // 10)
        else:
            total += -(-len(part) * 3 // 5)
    return total


def estimate_tokens(text: str) -> int:
    """An offline token count that errs high against byte-level BPE tokenizers.

    The text is cut into pieces, each costed at or above what cl100k and o200k spend on it:

    - letters, split where the case changes: a known word (:data:`_ONE_TOKEN_WORDS`) costs
      one; other lowercase or capitalised letters 0.6 a letter, and capitals 0.7 a letter,
      rounded up: what random codes and hashes cost, where words cost far less (about 0.25);
    - a run of digits: one token per three digits, as those tokenizers group digits;
    - spaces: none for a single space before a word or a symbol (it joins it), one for a space
      before a digit (the tokenizers keep it apart), and one more per four in longer runs;
    - any other ASCII character (punctuation, ``|``, newline): one;
    - a non-ASCII character: one per UTF-8 byte, the most a byte-level BPE can spend, except
      the few symbols the summaries write (``· … × → –``), which cost one.

    On summaries of typical frames this counts about 1.4 times what those tokenizers do, on
    ones full of random letter codes or numbers about 1.1 times; a single random string of
    letters can cost a little more than its estimate, a whole summary does not.

    No piece spans a newline, so the estimate of lines joined by newlines is the sum of the
    lines' estimates plus one per newline; the budget search relies on that.
    """
    total = 0
    for match in _TOKEN_PIECES.finditer(text):
        kind, piece = match.lastgroup, match[0]
        if kind == "letters":
            total += _letter_tokens(piece)
        elif kind == "digits":
            total += -(-len(piece) // 3)
        elif kind == "before_digit":
            total += 1 + (len(piece) + 2) // 4
        elif kind == "spaces":
            total += (len(piece) + 2) // 4
        elif kind == "ascii" or piece in _CHEAP_SYMBOLS:
            total += 1
        else:
            total += len(piece.encode("utf-8"))
    return total
