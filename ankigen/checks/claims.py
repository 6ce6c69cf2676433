"""Claims written in code comments (`# prints: tensor(6.)`) and their verification by running.

A reference note's blocks run in order in one namespace, like a notebook. A claim on the
same line describes that statement's output; a claim on a line of its own describes the
next statement (`# prints tensor(6.) since …` above `xt.grad`). A block that fails only
because it uses a name defined nowhere in the note is "not runnable as written".
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from typing import Any

from ..code_claims import extract_claims  # re-exported: reading claims is part of parsing
from ..model import CodeBlock, CodeClaim, Document

__all__ = ["BlockResult", "ClaimResult", "DocumentReport", "defined_names", "extract_claims",
           "normalise_output", "verify_document"]


def normalise_output(text: str) -> str:
    return " ".join(text.replace("\n", " ").split()).rstrip(".").strip()


@dataclass(frozen=True)
class ClaimResult:
    claim: CodeClaim
    verdict: str  # "verified" | "contradicted" | "error" | "not run"
    actual: str | None


@dataclass(frozen=True)
class BlockResult:
    block: CodeBlock
    # "ok" | "error" | "not runnable as written" | "skipped" | "timeout" | "crashed" |
    # "not run" (after a block that timed out or crashed)
    status: str
    exception: str | None
    claims: tuple[ClaimResult, ...] = ()
    line: int | None = None  # for "error": the failing statement's line within the block


@dataclass(frozen=True)
class DocumentReport:
    path: str
    blocks: tuple[BlockResult, ...]
    device: str
    torch_version: str
    isolation: tuple[str, ...] = field(default=())

    @property
    def contradicted(self) -> int:
        return sum(c.verdict == "contradicted" for b in self.blocks for c in b.claims)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "device": self.device, "torch": self.torch_version,
            "isolation": list(self.isolation),
            "blocks": [{"lines": [b.block.span.start, b.block.span.end], "status": b.status,
                        "exception": b.exception,
                        "claims": [{"line": c.claim.line, "expected": c.claim.expected,
                                    "verdict": c.verdict, "actual": c.actual} for c in b.claims]}
                       for b in self.blocks],
        }


def defined_names(blocks: list[str]) -> set[str]:
    """Every name a note's code binds anywhere (assignments, defs, imports, loops)."""
    names: set[str] = set()
    for code in blocks:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        augmented = {id(n.target) for n in ast.walk(tree) if isinstance(n, ast.AugAssign)}
        for node in ast.walk(tree):
            # `w -= …` needs w to exist already: it defines nothing.
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) \
                    and id(node) not in augmented:
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def _undefined_name(exception: str | None) -> str | None:
    m = re.match(r"NameError: name '(\w+)' is not defined", exception or "")
    return m.group(1) if m else None


def verify_document(doc: Document, runner: Any) -> DocumentReport:
    blocks = [b for b in doc.code_blocks if b.fenced and b.lang in ("python", "py", "")]
    if not blocks:
        return DocumentReport(doc.path, (), runner.device_label, runner.torch_version,
                              runner.isolation)
    result = runner.run_notebook([b.code for b in blocks])
    codes = [b.code for b in blocks]
    everywhere = defined_names(codes)
    raw = list(result.blocks)[:len(blocks)]
    if result.status in ("timeout", "crashed") or len(raw) < len(blocks):
        # Blocks report as they finish: the first without a report is the one that hung
        # or crashed, and nothing after it ran. Neither failed on its own merits: say so,
        # never call it an error (no card, no 🔴), never a pass.
        stopped = result.status if result.status in ("timeout", "crashed") else "crashed"
        raw.append({"ok": False, "exception": result.exception, "statements": [],
                    "status": stopped})
        raw += [{"ok": False, "exception": None, "statements": [], "status": "not run"}
                for _ in blocks[len(raw):]]
    failed_defs: set[str] = set()
    out = []
    for block, rec in zip(blocks, raw, strict=False):
        exc = rec.get("exception")
        missing = _undefined_name(exc)
        if rec.get("status"):
            status = rec["status"]
        elif rec.get("ok"):
            status = "ok"
        elif missing and missing not in everywhere and not hasattr(builtins, missing):
            status = "not runnable as written"
        elif missing and missing in failed_defs:
            status = "skipped"  # it needs a name an earlier failing block should have made
        else:
            status = "error"
        if not rec.get("ok"):
            failed_defs |= defined_names([block.code])
        out.append(BlockResult(block, status, exc, _claims(block, rec, status),
                               rec.get("line") if status == "error" else None))
    return DocumentReport(doc.path, tuple(out), runner.device_label, runner.torch_version,
                          runner.isolation)


def _claims(block: CodeBlock, rec: dict[str, Any], status: str) -> tuple[ClaimResult, ...]:
    statements = rec.get("statements", [])
    results = []
    for claim in block.claims:
        target = claim.expr_line - block.span.start + 1 if claim.expr_line else None
        stmt = next((s for s in statements
                     if target is not None and s["line"] <= target <= (s["end"] or s["line"])), None)
        if stmt is None:
            verdict = "error" if status == "error" else "not run"
            results.append(ClaimResult(claim, verdict, None))
            continue
        actual = stmt["printed"].strip() or (stmt["value"] or "")
        same = normalise_output(actual) == normalise_output(claim.expected)
        results.append(ClaimResult(claim, "verified" if same else "contradicted", actual))
    return tuple(results)
