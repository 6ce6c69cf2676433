"""Checks for a build: which gap gets which code, run in parallel, cached by (code, torch, device)."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import CheckError
from ..model import CheckOutput, Document, Gap, GapKind
from .bank import match_gap
from .claims import BlockResult, ClaimResult, DocumentReport, defined_names, verify_document
from .reference import gaps_from_report


def torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


class ResultCache:
    """SQLite: (code, torch version, requested device) → what the run printed."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    @staticmethod
    def key(code: str, version: str, device: str) -> str:
        return hashlib.sha256(f"{version}\x1f{device}\x1f{code}".encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM runs WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    def close(self) -> None:
        self._db.close()


def _block_for(doc: Document, gap: Gap) -> str | None:
    """The learner's own fenced block holding the wrong line, if it runs as written."""
    for block in doc.code_blocks:
        if block.fenced and gap.code and gap.code in block.code and \
                block.span.start >= gap.span.start and block.span.end <= gap.span.end:
            return block.code
    return None


_CALL = re.compile(r"[A-Za-z_][\w.]*\([^()\n]*\)|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def corrected_line(wrong: str, answer: str | None) -> str | None:
    """The wrong line with the tutor's spelling of what it got wrong, when the answer holds
    a call or dotted name that differs only a little from one in the line
    (`loss.backwards()` → `loss.backward()`, `torch.nn.function` → `torch.nn.functional`)."""
    if not answer:
        return None
    theirs = [m.group(0) for m in _CALL.finditer(answer)]
    for mine in (m.group(0) for m in _CALL.finditer(wrong)):
        for fix in theirs:
            if fix != mine and fix not in wrong and \
                    difflib.SequenceMatcher(None, mine, fix).ratio() >= 0.85:
                return wrong.replace(mine, fix, 1)
    return None


def plan(pairs: Sequence[tuple[Document, Gap]]) -> dict[str, tuple[str, str]]:
    """gap anchor → (title, code) for every gap that gets a check."""
    return {a: (t, c) for a, (t, c, _fix) in _plan(pairs).items()}


Fix = tuple[str, str] | None  # (corrected line, the block with it), for wrong recalled code


def _plan(pairs: Sequence[tuple[Document, Gap]]) -> dict[str, tuple[str, str, Fix]]:
    out: dict[str, tuple[str, str, Fix]] = {}
    for doc, gap in pairs:
        if gap.kind is GapKind.WRONG_CODE:
            code = _block_for(doc, gap)
            if code:
                line = gap.code or ""
                fixed = corrected_line(line, gap.answer)
                fix = (fixed, code.replace(line, fixed, 1)) if fixed else None
                out[gap.anchor] = ("Your code, run as written", code, fix)
                continue
        check, _why = match_gap(gap)
        if check is not None:
            out[gap.anchor] = (f"Check: {check.title}", check.code, None)
    return out


Extra = list[tuple[Document, Gap, CheckOutput]]


def _report_from(doc: Document, data: dict[str, Any]) -> DocumentReport:
    blocks = [b for b in doc.code_blocks if b.fenced and b.lang in ("python", "py", "")]
    out = []
    for block, rec in zip(blocks, data["blocks"]):
        claims = tuple(ClaimResult(c, v, a) for c, (v, a) in zip(block.claims, rec["claims"]))
        out.append(BlockResult(block, rec["status"], rec["exception"], claims))
    return DocumentReport(doc.path, tuple(out), data["device"], data["torch"])


def reference_gaps(docs: Sequence[Document], runner: Callable[[], Any], cache: ResultCache,
                   version: str, device: str) -> tuple[Extra, int]:
    """Verify reference notes' code (cached per note's code) and turn what fails into gaps."""
    extra: Extra = []
    ran = 0
    for doc in docs:
        if doc.kind != "reference" or not any(b.fenced for b in doc.code_blocks):
            continue
        code = "\x1e".join(b.code for b in doc.code_blocks if b.fenced)
        key = ResultCache.key("notebook\x1d" + code, version, device)
        data = cache.get(key)
        if data is None:
            report = verify_document(doc, runner())
            ran += 1
            data = {"device": report.device, "torch": report.torch_version,
                    "blocks": [{"status": b.status, "exception": b.exception,
                                "claims": [(c.verdict, c.actual) for c in b.claims]}
                               for b in report.blocks]}
            if not any(b.status in ("timeout", "crashed") for b in report.blocks):
                cache.put(key, data)  # a hang or a crash is retried next build
        for gap, output in gaps_from_report(doc, _report_from(doc, data)):
            extra.append((doc, gap, output))
    return extra, ran


def run_checks(pairs: Sequence[tuple[Document, Gap]], *, device: str, cache_dir: Path,
               progress: Callable[[str, int, int], None] | None = None,
               docs: Sequence[Document] = (), timeout_s: float = 10.0
               ) -> tuple[dict[str, CheckOutput], int, str, Extra]:
    """Run (or fetch from the cache) the checks the gaps need. Never raises on a bad check,
    nor when no runner can start here (the build goes on without checks, and says why)."""
    version = torch_version()
    if version is None:
        return {}, 0, "skipped: torch is not installed (pip install '.[torch]')", []
    planned = _plan(pairs)
    cache = ResultCache(cache_dir / "checks.sqlite")
    runners: list[Any] = []

    def runner() -> Any:
        if not runners:
            from .keeper import open_runner

            runners.append(open_runner(device=device, timeout_s=timeout_s))
        return runners[0]

    try:
        extra, ref_ran = reference_gaps(docs, runner, cache, version, device)
        outputs, ran, note = _bank_and_code(planned, cache, runner, version, device, progress)
    except CheckError as exc:
        return {}, 0, f"skipped: {exc}", []
    finally:
        for r in runners:
            r.close()
        cache.close()
    outputs.update({g.anchor: o for _, g, o in extra})
    if extra:
        note += f"; {len(extra)} from reference notes' code"
    if runners and getattr(runners[0], "started", False):  # say so: it outlives the build
        note += (f"; a warm check server stays up {runners[0].idle_s:g} s for the next run "
                 "(ankigen check-server stop)")
    return outputs, ran + ref_ran, note, extra


def _bank_and_code(planned: dict[str, tuple[str, str, Fix]], cache: ResultCache,
                   runner: Callable[[], Any], version: str, device: str,
                   progress: Callable[[str, int, int], None] | None
                   ) -> tuple[dict[str, CheckOutput], int, str]:
    results: dict[str, dict[str, Any]] = {}
    todo: dict[str, str] = {}
    codes = [c for _t, code, fix in planned.values() for c in (code, fix[1] if fix else None) if c]
    for code in codes:
        key = ResultCache.key(code, version, device)
        hit = cache.get(key)
        if hit is not None:
            results[key] = hit
        else:
            todo[key] = code
    ran = 0
    if todo:
        keys = list(todo)

        def tick(n: int) -> None:
            if progress:
                progress("checks", n, len(keys))

        for key, res in zip(keys, runner().run_many([todo[k] for k in keys], progress=tick),
                            strict=True):
            value = {"status": res.status, "output": _shown(res.stdout, res.exception),
                     "exception": res.exception, "device": res.device,
                     "torch": res.torch_version}
            if res.status in ("ok", "error"):  # timeouts and crashes are retried next build
                cache.put(key, value)
            results[key] = value
        ran = len(keys)
    outputs = {}
    for anchor, (title, code, fix) in planned.items():
        r = results[ResultCache.key(code, version, device)]
        output = r["output"]
        if fix and r["status"] == "error":
            f = results[ResultCache.key(fix[1], version, device)]
            outcome = "runs without an error" if f["status"] == "ok" else \
                f"still fails: {f.get('exception') or f['status']}"
            output += f"\n\nWith the tutor's correction, {fix[0].strip()}, the block {outcome}."
        outputs[anchor] = CheckOutput(code=code, output=output, status=r["status"],
                                      device=r["device"], torch_version=r["torch"], title=title)
    failed = sum(o.status != "ok" for o in outputs.values())
    note = f"{len(outputs)} on cards ({ran} run, {len(set(codes)) - ran} cached" + \
        (f", {failed} not ok" if failed else "") + ")"
    return outputs, ran, note


def _shown(stdout: str, exception: str | None) -> str:
    text = stdout.rstrip()
    if exception:
        text = (text + "\n" if text else "") + exception
    return text


def build_hook(device: str, cache_dir: Path | None = None,
               progress: Callable[[str, int, int], None] | None = None,
               timeout_s: float = 10.0
               ) -> Callable[..., tuple[dict[str, CheckOutput], int, str, Extra]]:
    from ..build import cache_dir as default_cache

    def hook(pairs: list[tuple[Document, Gap]], docs: Sequence[Document]
             ) -> tuple[dict[str, CheckOutput], int, str, Extra]:
        return run_checks(pairs, device=device, cache_dir=cache_dir or default_cache(),
                          progress=progress, docs=docs, timeout_s=timeout_s)

    # A deck built with checks on CPU is not the deck --device cuda would build: an unchanged
    # vault is "up to date" only for the same device and time limit.
    hook.key = f"device={device};timeout={timeout_s:g}"  # type: ignore[attr-defined]
    return hook


__all__ = ["build_hook", "defined_names", "plan", "run_checks"]
