"""How much the judge may be shown: a token estimate for a request, with no tokenizer.

Sources a learner grades against (a chapter, a set of notes) usually fit a model's context
whole, and a judge that sees the whole source settles claims that five retrieved passages
miss. Whether they fit is decided on an estimate, not a tokenizer: the ones that count
exactly download their tables at run time, and the estimate only has to err high.

It errs high by construction. Byte-level BPE tokenizers (GPT, Llama 3, Qwen, Mistral's
tekken) first cut text into pre-tokens (a run of letters with its leading space, a run of
digits, a run of punctuation) and never merge across them, so a text has at least as many
tokens as pre-tokens. The estimate is the larger of 1.3 x that floor (English words run at
about 1.3 tokens each) and one token per 3.5 UTF-8 bytes (prose runs at 4 or more, code and
JSON nearer 3.5), and the budget keeps a further margin for what the estimate cannot see.
"""

from __future__ import annotations

import math
import re

DEFAULT_CONTEXT_TOKENS = 32_000  # the whole request: instructions, data and the answer
SAFETY = 0.9  # the share of the budget the estimate may fill
ANSWER_BASE = 1_500  # tokens kept for the answer: its frame and the omissions
ANSWER_PER_CLAIM = 160  # and per claim: its reasoning, verdict and citation

# The GPT-2 family's pre-tokenizer, in `re` terms (no \p classes): a tokenizer cannot make
# fewer tokens than this makes pieces.
_PIECE_RE = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|_+|\s+(?!\S)|\s+")


def pieces(text: str) -> int:
    """The pre-token count: a lower bound on any byte-level BPE tokenizer's count."""
    return sum(1 for _ in _PIECE_RE.finditer(text))


def estimate_tokens(text: str) -> int:
    """An estimate of `text`'s token count meant to err high (see the module docstring)."""
    if not text:
        return 0
    return math.ceil(max(1.3 * pieces(text), len(text.encode("utf-8")) / 3.5))


def answer_reserve(claims: int) -> int:
    return ANSWER_BASE + ANSWER_PER_CLAIM * claims


def fits(system: str, user: str, claims: int, budget: int) -> bool:
    """Whether a request (and room for its answer) fits `budget` tokens, with the margin."""
    need = estimate_tokens(system) + estimate_tokens(user) + answer_reserve(claims) + 16
    return need <= SAFETY * budget
