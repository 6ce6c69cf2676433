"""Claims written in code comments (`# prints: tensor(6.)`), read while parsing a note.

Pure text, no torch: the parser needs it for every code block, so it lives outside the
checks package (whose runner and bank the parser never needs). Verifying the claims by
running the code is ankigen.checks.claims.
"""

from __future__ import annotations

import ast
import re

from .model import ClaimForm, CodeClaim
from .python_code import syntax_tree

# The explicit forms only (docs/checks.md, "Claims"): a keyword with a colon (`# prints: X`,
# `# Output: X`), an arrow (`# -> X`), or a keyword before a value (`# prints tensor(6.)`,
# `# returns 3`). A keyword before words (`# Output layer`, `# Print the model
# architecture`, `# prints the loss every 10 epochs`) describes the code: no claim.
CLAIM_RE = re.compile(
    r"#\s*(?:(?P<kw>prints?|printed|outputs?|returns?|gives?|shows?|displays?)\s*:"
    r"|(?P<arrow>->|=>|→)|(?P<bare>prints?|printed|outputs?|returns?)\s)"
    r"\s*(?P<x>\S.*)$",
    re.I,
)
# A claim about the statement's value (compared with its repr), not about what it printed.
_VALUE_WORDS = frozenset({"return", "returns", "give", "gives", "->", "=>", "→"})
_EXPLAIN_RE = re.compile(r"\s+(?:since|because|as|which|—|--)\s+.*$|\s*;.*$", re.I)
_VALUE_NODES = (ast.Constant, ast.Call, ast.Attribute, ast.Subscript, ast.List, ast.Tuple,
                ast.Dict, ast.Set, ast.UnaryOp, ast.BinOp, ast.Compare)


def value_like(text: str) -> bool:
    """Whether `text` reads as a printed value (`tensor(6.)`, `3`, `torch.float32`,
    `[1, 2]`, `True`), not as words (`layer`, `the loss every 10 epochs`)."""
    tree = syntax_tree(text, mode="eval")
    return isinstance(tree, ast.Expression) and isinstance(tree.body, _VALUE_NODES)


def extract_claims(code: str, first_line: int) -> tuple[CodeClaim, ...]:
    """Claims in a block whose first code line is `first_line` of the file."""
    lines = code.split("\n")
    claims = []
    for i, raw in enumerate(lines):
        if "#" not in raw:
            continue
        comment_at = _comment_start(raw)
        if comment_at is None:
            continue
        m = CLAIM_RE.match(raw[comment_at:])
        if not m:
            continue
        expected = _EXPLAIN_RE.sub("", m.group("x")).strip().strip("`")
        if not expected or (m.group("bare") and not value_like(expected)):
            continue
        own_line = not raw[:comment_at].strip()
        target = _next_code_line(lines, i) if own_line else i
        word = (m.group("kw") or m.group("arrow") or m.group("bare")).lower()
        form: ClaimForm = "value" if word in _VALUE_WORDS else "prints"
        claims.append(CodeClaim(line=first_line + i, expected=expected,
                                text=raw[comment_at:].strip(),
                                expr_line=None if target is None else first_line + target,
                                form=form))
    return tuple(claims)


def _comment_start(line: str) -> int | None:
    """Where a `#` comment starts, ignoring `#` inside string literals."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return i
    return None


def _next_code_line(lines: list[str], i: int) -> int | None:
    for j in range(i + 1, len(lines)):
        s = lines[j].strip()
        if s and not s.startswith("#"):
            return j
    return None
