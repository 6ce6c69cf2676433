"""Checks for a build: which gap gets which code, run in parallel, cached by (code, torch, device)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

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


def plan(pairs: Sequence[tuple[Document, Gap]]) -> dict[str, tuple[str, str]]:
    """gap anchor → (title, code) for every gap that gets a check."""
    out: dict[str, tuple[str, str]] = {}
    for doc, gap in pairs:
        if gap.kind is GapKind.WRONG_CODE:
            code = _block_for(doc, gap)
            if code:
                out[gap.anchor] = ("Your code, run as written", code)
                continue
        check, _why = match_gap(gap)
        if check is not None:
            out[gap.anchor] = (f"Check: {check.title}", check.code)
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
               docs: Sequence[Document] = ()) -> tuple[dict[str, CheckOutput], int, str, Extra]:
    """Run (or fetch from the cache) the checks the gaps need. Never raises on a bad check."""
    version = torch_version()
    if version is None:
        return {}, 0, "skipped: torch is not installed (pip install '.[torch]')", []
    planned = plan(pairs)
    cache = ResultCache(cache_dir / "checks.sqlite")
    runners: list[Any] = []

    def runner() -> Any:
        if not runners:
            from .runner import Runner

            runners.append(Runner(device=device))
        return runners[0]

    try:
        extra, ref_ran = reference_gaps(docs, runner, cache, version, device)
        outputs, ran, note = _bank_and_code(planned, cache, runner, version, device, progress)
    finally:
        for r in runners:
            r.close()
        cache.close()
    outputs.update({g.anchor: o for _, g, o in extra})
    if extra:
        note += f"; {len(extra)} from reference notes' code"
    return outputs, ran + ref_ran, note, extra


def _bank_and_code(planned: dict[str, tuple[str, str]], cache: ResultCache,
                   runner: Callable[[], Any], version: str, device: str,
                   progress: Callable[[str, int, int], None] | None
                   ) -> tuple[dict[str, CheckOutput], int, str]:
    results: dict[str, dict[str, Any]] = {}
    todo: dict[str, str] = {}
    for _title, code in planned.values():
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

        for key, res in zip(keys, runner().run_many([todo[k] for k in keys], progress=tick)):
            value = {"status": res.status, "output": _shown(res.stdout, res.exception),
                     "device": res.device, "torch": res.torch_version}
            if res.status in ("ok", "error"):  # timeouts and crashes are retried next build
                cache.put(key, value)
            results[key] = value
        ran = len(keys)
    outputs = {}
    for anchor, (title, code) in planned.items():
        r = results[ResultCache.key(code, version, device)]
        outputs[anchor] = CheckOutput(code=code, output=r["output"], status=r["status"],
                                      device=r["device"], torch_version=r["torch"], title=title)
    failed = sum(o.status != "ok" for o in outputs.values())
    note = f"{len(outputs)} on cards ({ran} run, {len(outputs) - ran} cached" + \
        (f", {failed} not ok" if failed else "") + ")"
    return outputs, ran, note


def _shown(stdout: str, exception: str | None) -> str:
    text = stdout.rstrip()
    if exception:
        text = (text + "\n" if text else "") + exception
    return text


def build_hook(device: str, cache_dir: Path | None = None,
               progress: Callable[[str, int, int], None] | None = None
               ) -> Callable[..., tuple[dict[str, CheckOutput], int, str, Extra]]:
    from ..build import cache_dir as default_cache

    def hook(pairs: list[tuple[Document, Gap]], docs: Sequence[Document]
             ) -> tuple[dict[str, CheckOutput], int, str, Extra]:
        return run_checks(pairs, device=device, cache_dir=cache_dir or default_cache(),
                          progress=progress, docs=docs)

    return hook


__all__ = ["build_hook", "defined_names", "plan", "run_checks"]
