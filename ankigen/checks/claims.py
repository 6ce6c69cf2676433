"""Claims written in code comments (`# prints: tensor(6.)`) and their verification by running.

A reference note's blocks run in order in one namespace, like a notebook. A claim on the
same line describes that statement's output; a claim on a line of its own describes the
next statement (`# prints tensor(6.) since …` above `xt.grad`). A block that fails only
because it uses a name defined nowhere in the note is "not runnable as written"; one that
needs what this machine cannot give (a package not installed, the network, IPython) is
"not runnable here".
"""

from __future__ import annotations

import ast
import builtins
import importlib.machinery
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..code_claims import extract_claims  # re-exported: reading claims is part of parsing
from ..model import CodeBlock, CodeClaim, Document
from ..python_code import is_python, prepare, syntax_tree

__all__ = ["EXIT_CODES", "BlockResult", "ClaimResult", "DocumentReport", "defined_names",
           "exit_code", "explain", "extract_claims", "normalise_output", "not_runnable_here",
           "notebook_blocks",
           "summary_line", "verify_document"]

# `ankigen check`'s exit codes, defined once (docs/checks.md and `--help` show this table).
EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_CONTRADICTED, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2, 3, 4, 5
EXIT_CODES = (
    (EXIT_OK, "every block that could run ran and every claim held (blocks not runnable "
              "here, as written, or skipped are counted, not failed)"),
    (EXIT_BAD_INPUT, "bad input (a file that cannot be read or parsed)"),
    (EXIT_USAGE, "usage error"),
    (EXIT_CONTRADICTED, "a claim was contradicted"),
    (EXIT_FAILED, "a block raised an error, crashed or timed out (takes precedence over 3)"),
    (EXIT_REFUSED, "refused: no sandbox here, nothing ran"),
)
FAILED = frozenset({"error", "crashed", "timeout"})


def normalise_output(text: str) -> str:
    """Output as compared with a claim: exactly, except that any run of whitespace (line
    breaks included) counts as one space. `3.` is not `3`."""
    return " ".join(text.split())


def notebook_blocks(doc: Document) -> list[CodeBlock]:
    """The blocks `verify_document` runs, in order: fenced and Python (tagged so, d2l's
    `{.python .input}`, or untagged code that parses as Python and looks like it)."""
    return [b for b in doc.code_blocks if b.fenced and is_python(b.lang, b.code)]


@dataclass(frozen=True)
class ClaimResult:
    claim: CodeClaim
    verdict: str  # "verified" | "contradicted" | "error" | "not run"
    actual: str | None


@dataclass(frozen=True)
class BlockResult:
    block: CodeBlock
    # "ok" | "error" | "not runnable as written" | "not runnable here" | "skipped" |
    # "timeout" | "crashed" | "not run" (after a block that timed out or crashed)
    status: str
    # the exception; for "not runnable here", why (what it needs); for "timeout" and
    # "crashed", what happened to the block in plain words
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

    @property
    def failed(self) -> int:
        """Blocks that raised, crashed or timed out."""
        return sum(b.status in FAILED for b in self.blocks)

    def statuses(self) -> dict[str, int]:
        return _count(b.status for b in self.blocks)

    def verdicts(self) -> dict[str, int]:
        return _count(c.verdict for b in self.blocks for c in b.claims)

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


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def summary_line(reports: Sequence[DocumentReport]) -> str:
    """`3 blocks (1 error, 2 ok); claims: 1 contradicted, 2 verified` over all reports."""
    statuses: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    for r in reports:
        for k, n in r.statuses().items():
            statuses[k] = statuses.get(k, 0) + n
        for k, n in r.verdicts().items():
            verdicts[k] = verdicts.get(k, 0) + n
    blocks = sum(statuses.values())
    return (f"{blocks} blocks ("
            + (", ".join(f"{n} {k}" for k, n in sorted(statuses.items())) or "none")
            + "); claims: "
            + (", ".join(f"{n} {k}" for k, n in sorted(verdicts.items())) or "none"))


def exit_code(reports: Sequence[DocumentReport]) -> int:
    """EXIT_FAILED over EXIT_CONTRADICTED over EXIT_OK (see EXIT_CODES)."""
    if any(r.failed for r in reports):
        return EXIT_FAILED
    if any(r.contradicted for r in reports):
        return EXIT_CONTRADICTED
    return EXIT_OK


# What a runner reports of a block that timed out or crashed, said as what happened to it.
_TIMEOUT_RE = re.compile(r"killed after (\d+(?:\.\d+)?) ?s\b")
_EXHAUSTED_RE = re.compile(r"can't start new thread|Resource temporarily unavailable|EAGAIN|"
                           r"MemoryError|BlockingIOError|Cannot allocate memory", re.I)


def exhausted(exception: str | None) -> bool:
    """Whether a failure came from the machine's limits (processes, threads, memory), not
    from the code: never cached, never a card."""
    return bool(exception and _EXHAUSTED_RE.search(exception))


def explain(status: str, message: str | None) -> str | None:
    """A timeout's or a crash's message in plain words (what happened to the block), for
    messages that still carry a runner's internals; other statuses' messages unchanged."""
    if status not in ("timeout", "crashed"):
        return message
    if not message:
        return _PLAIN[status]
    if status == "timeout":
        m = _TIMEOUT_RE.search(message)
        if m:
            return f"the block ran past its {m.group(1)} s limit and was stopped"
        return message
    if "RecursionError" in message or "recursion" in message.lower():
        return "the block recursed too deeply and its process could not report a result"
    if exhausted(message):
        return ("the block ran out of processes, threads or memory on this machine "
                f"({message.splitlines()[-1][:200]})")
    if re.search(r"exit status|no exit status|after its report|signal|SIG[A-Z]+", message):
        return "the block's process ended without reporting a result (it exited or was killed)"
    return message


_PLAIN = {"timeout": "the block ran past its time limit and was stopped",
          "crashed": "the block's process ended without reporting a result (it exited or "
                     "was killed)"}


_NO_MODULE_RE = re.compile(r"^ModuleNotFoundError: No module named '([\w.]+)'")
_NO_GPU_RE = re.compile(r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|"
                        r"no CUDA GPUs are available|CUDA driver initialization failed")
_NETWORK_RE = re.compile(
    r"URLError|ConnectionError|gaierror|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|No address associated with hostname|"
    r"Failed to establish a new connection|HTTPS?ConnectionPool|MaxRetryError|"
    r"nodename nor servname")


def _installed(module: str) -> bool:
    """Whether a top-level module is installed for this Python (the one checks run with);
    the current folder does not count (a note's neighbour is not an installed package)."""
    if module in sys.builtin_module_names or module in sys.stdlib_module_names:
        return True
    here = str(Path.cwd())
    path = [p for p in sys.path if p and p != here and p != "."]
    return importlib.machinery.PathFinder.find_spec(module, path) is not None


def not_runnable_here(exception: str | None) -> str | None:
    """Why a block's failure says nothing about the note: what it needs that this machine
    has not got. A missing submodule of an installed package (`torch.nn.function`) is the
    note's error, not the machine's."""
    if not exception:
        return None
    m = _NO_MODULE_RE.match(exception)
    if m:
        top = m.group(1).split(".")[0]
        if not _installed(top):
            return f"needs {top}, which is not installed here ({exception})"
        return None
    if _NETWORK_RE.search(exception):
        return f"needs the network, which checks do not have ({exception})"
    if _NO_GPU_RE.search(exception):
        return f"needs a CUDA GPU, which this machine has not got ({exception})"
    return None


def defined_names(blocks: list[str]) -> set[str]:
    """Every name a note's code binds anywhere (assignments, defs, imports, loops)."""
    names: set[str] = set()
    for code in blocks:
        tree = syntax_tree(code)
        if tree is None:
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
    blocks = notebook_blocks(doc)
    if not blocks:
        return DocumentReport(doc.path, (), runner.device_label, runner.torch_version,
                              runner.isolation)
    prepared_blocks = [prepare(b.code) for b in blocks]
    # What is sent to the runner for each block: its code with IPython's lines made `pass`,
    # or nothing for a cell that is not Python (it is reported "not runnable here").
    codes = ["" if p.not_python else p.code for p in prepared_blocks]
    result = runner.run_notebook(codes)
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
    for block, prepared, rec in zip(blocks, prepared_blocks, raw, strict=False):
        exc = rec.get("exception")
        missing = _undefined_name(exc)
        here = None if rec.get("ok") or rec.get("status") else not_runnable_here(exc)
        if here is None and not rec.get("ok") and prepared.shell and exc and \
                exc.startswith(("FileNotFoundError", "OSError")):
            shell = next(r for r in prepared.removed if r.startswith("!"))
            here = f"needs what its shell line {shell} would make ({exc})"
        if rec.get("status"):
            status = rec["status"]
            exc = explain(status, exc)
        elif prepared.not_python:
            status, exc = "not runnable here", prepared.not_python
            rec = {**rec, "ok": False, "statements": []}
        elif rec.get("ok"):
            status = "ok"
        elif exhausted(exc):  # the machine's limits, not the note: never a card
            status, exc = "crashed", explain("crashed", exc)
        elif here:
            status, exc = "not runnable here", here
        elif missing and missing not in everywhere and not hasattr(builtins, missing):
            status = "not runnable as written"
        elif missing and missing in failed_defs:
            status = "skipped"  # it needs a name an earlier failing block should have made
        else:
            status = "error"
        if not rec.get("ok"):
            failed_defs |= defined_names([prepared.code])
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
        printed, value = str(stmt.get("printed") or ""), stmt.get("value")
        if claim.form == "value" and value is not None:
            actual = str(value)  # the value itself, not what was printed meanwhile
        else:  # what it printed; a bare expression shows its value, as in a notebook
            actual = printed.strip() or str(value or "")
        same = normalise_output(actual) == normalise_output(claim.expected)
        results.append(ClaimResult(claim, "verified" if same else "contradicted", actual))
    return tuple(results)
