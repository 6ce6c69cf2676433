"""Recalled code, run through ankigen's sandboxed check runner like a notebook.

Blocks tagged Python run; an untagged fence or unfenced code runs only when ankigen's
own rule calls it Python (`ankigen.python_code.is_python`: it parses and looks like a
program), so the grader and the cards run the same blocks and sample output, shell lines
or code-shaped prose are left alone. A block that fails only because it uses a name defined
nowhere in the session is "not runnable as written": worth saying, not worth a 🔴.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ankigen.errors import SandboxUnavailable
from ankigen.model import CodeBlock, Document
from ankigen.python_code import PYTHON_LANGS, is_python, parses, prepare
from ankigen.text import clean

from .model import CodeRun

_PYTHON = PYTHON_LANGS | {""}
STATUS = {"ok": "ok", "error": "error", "not runnable as written": "not_runnable",
          "not runnable here": "not_runnable_here", "skipped": "skipped",
          "timeout": "timeout", "crashed": "crashed", "not run": "skipped"}


class SharedRunner:
    """Opens ankigen's check runner on first use (the user's warm keeper, or servers of its
    own: a torch import, two seconds), hands the same one to every later caller, and
    closes it once. Without a sandbox it opens none (SandboxUnavailable, remembered), unless
    `unsandboxed` (`--unsafe-no-sandbox`). `isolation` is the one line a report shows: the
    isolation the code ran under, or why it did not run; "" while nothing was asked."""

    def __init__(self, device: str = "auto", timeout_s: float = 10.0,
                 unsandboxed: bool = False):
        self.device, self.timeout_s, self.unsandboxed = device, timeout_s, unsandboxed
        self._runner: Any = None
        self._failure: Exception | None = None
        self.isolation = ""

    def __call__(self) -> Any:
        if self._failure is not None:
            raise self._failure
        if self._runner is None:
            from ankigen.checks import open_runner
            from ankigen.checks.cards import torch_version

            try:
                if torch_version() is None:
                    raise RuntimeError("torch is not installed (pip install '.[torch]')")
                self._runner = open_runner(device=self.device, timeout_s=self.timeout_s,
                                           unsandboxed=self.unsandboxed)
            except SandboxUnavailable as exc:
                from ankigen.checks.cards import refusal

                self._failure = exc
                self.isolation = f"code not run: {refusal(exc)}"
                raise
            except Exception as exc:
                self._failure = exc
                raise
            from ankigen.checks.sandbox import summary

            self.isolation = summary(self._runner.isolation)
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> SharedRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def runnable_blocks(doc: Document) -> tuple[list[CodeBlock], list[CodeBlock]]:
    """(blocks to run, blocks left alone as pseudo-code or another language)."""
    run: list[CodeBlock] = []
    left: list[CodeBlock] = []
    for block in doc.code_blocks:
        lang = block.lang.lower()
        if lang not in _PYTHON or not block.code.strip():
            left.append(block)
        elif is_python("" if not block.fenced else lang, block.code):
            run.append(replace(block, fenced=True, lang="python"))
        else:
            left.append(block)
    return run, left


def _why_left(block: CodeBlock) -> str:
    if block.lang.lower() not in _PYTHON:
        return f"{block.lang} code"
    if not parses(prepare(block.code).code):
        return "pseudo-code, not valid Python"
    return "not run: no import, call, loop or definition, so not taken for a program"


def run_code(doc: Document, runner_factory: Callable[[], Any] | None) -> list[CodeRun]:
    """Run the session's code; `runner_factory` is called only when there is code to run."""
    run, left = runnable_blocks(doc)
    part_of = {n: p.index for p in doc.parts for n in range(p.span.start, p.span.end + 1)}
    out = [CodeRun(part_of.get(b.span.start, 0), b.span, b.fenced, "not_python",
                   _why_left(b)) for b in left if b.code.strip()]
    if not run:
        return out
    if runner_factory is None:
        return out + [CodeRun(part_of.get(b.span.start, 0), b.span, True, "skipped",
                              "not run: code checks are off") for b in run]
    try:
        runner = runner_factory()
    except Exception as exc:  # noqa: BLE001 - no runner is a reason, never a verdict
        if isinstance(exc, SandboxUnavailable):
            from ankigen.checks.cards import refusal

            reason = refusal(exc)
        else:
            reason = clean(getattr(exc, "bare", None) or str(exc))
        return out + [CodeRun(part_of.get(b.span.start, 0), b.span, True, "skipped",
                              f"not run: {reason}") for b in run]
    from ankigen.checks import verify_document

    fenced = {b.span.start: b.fenced for b in doc.code_blocks}
    report = verify_document(replace(doc, code_blocks=tuple(run)), runner)
    for res in report.blocks:
        span = res.block.span
        detail = res.exception or ("not run: an earlier block did not finish"
                                   if res.status == "not run" else "")
        out.append(CodeRun(part_of.get(span.start, 0), span, fenced[span.start],
                           STATUS.get(res.status, res.status), detail, report.device,
                           report.torch_version, span.start + res.line - 1 if res.line else None))
    return sorted(out, key=lambda r: r.span.start)
