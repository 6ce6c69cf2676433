"""Checks for a build: which gap gets which code, run in parallel, cached by everything a result
depends on (code, languages, torch, device, time limit, runner)."""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import CheckError, SandboxUnavailable
from ..model import CheckOutput, Document, Gap, GapKind, check_key
from ..text import clean
from .bank import match_gap
from .claims import (
    BlockResult,
    ClaimResult,
    DocumentReport,
    defined_names,
    exhausted,
    explain,
    not_runnable_here,
    notebook_blocks,
    verify_document,
)
from .early import EarlyStart, may_need_checks
from .reference import gaps_from_report
from .sandbox import summary


def torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


class ResultCache:
    """SQLite: everything a run's result depends on (its key) → what the run printed."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

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


# The code that decides a result: the runner (what runs and how) and the claim reading and
# verdicts. A change to any of it is another result.
_RESULT_CODE = ("checks/server.py", "checks/runner.py", "checks/protocol.py",
                "checks/sandbox.py", "checks/claims.py", "code_claims.py", "checks/names.py")


@functools.cache
def runner_version() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent.parent
    for name in _RESULT_CODE:
        path = here / name
        if path.exists():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class RunSetting:
    """Where and how checks run: part of every result's key."""

    version: str  # torch's
    device: str  # as requested
    timeout_s: float
    unsandboxed: bool = False

    def key(self, kind: str, *code: str) -> str:
        return ResultCache.key(kind, self.version, self.device, f"{self.timeout_s:g}",
                               runner_version(), "unsandboxed" if self.unsandboxed else "sandbox",
                               *code)


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
    """check key (`model.check_key`: note, place, gap) → (title, code) for every gap that
    gets a check."""
    return {k: (t, c) for k, (t, c, _fix) in _plan(pairs).items()}


Fix = tuple[str, str] | None  # (corrected line, the block with it), for wrong recalled code


def _plan(pairs: Sequence[tuple[Document, Gap]]) -> dict[str, tuple[str, str, Fix]]:
    out: dict[str, tuple[str, str, Fix]] = {}
    for doc, gap in pairs:
        key = check_key(doc.path, gap)
        if gap.kind is GapKind.WRONG_CODE:
            code = _block_for(doc, gap)
            if code:
                line = gap.code or ""
                fixed = corrected_line(line, gap.answer)
                fix = (fixed, code.replace(line, fixed, 1)) if fixed else None
                out[key] = ("Your code, run as written", code, fix)
                continue
        check, _why = match_gap(gap)
        if check is not None:
            out[key] = (f"Check: {check.title}", check.code, None)
    return out


Extra = list[tuple[Document, Gap, CheckOutput]]


def _report_from(doc: Document, data: dict[str, Any]) -> DocumentReport:
    out = []
    for block, rec in zip(notebook_blocks(doc), data["blocks"], strict=False):
        claims = tuple(ClaimResult(c, v, a) for c, (v, a) in zip(block.claims, rec["claims"],
                                                                  strict=False))
        out.append(BlockResult(block, rec["status"], rec["exception"], claims, rec.get("line")))
    return DocumentReport(doc.path, tuple(out), data["device"], data["torch"],
                          tuple(data.get("isolation", ())))


def notebook_key(doc: Document, setting: RunSetting) -> str:
    """Everything a note's notebook run depends on: the blocks `verify_document` runs, in
    order, each with its language and code (its claims are in its comments), and where and
    how they run. Blocks it does not run (`text`, unfenced) are not in it, and cannot make
    two notes share a result."""
    blocks = notebook_blocks(doc)
    return setting.key("notebook", *(f"{b.lang}\x1d{b.code}" for b in blocks))


def _cacheable(report: DocumentReport) -> bool:
    """A hang, a crash, the machine's limits or a missing package say nothing lasting about
    the note: tried again next build."""
    return not any(b.status in ("timeout", "crashed", "not runnable here")
                   or exhausted(b.exception) for b in report.blocks)


def reference_gaps(docs: Sequence[Document], runner: Callable[[], Any], cache: ResultCache,
                   setting: RunSetting) -> tuple[Extra, int, dict[str, int]]:
    """Verify reference notes' code (cached per note's code) and turn contradicted claims into
    gaps; also how many of their blocks ended each way (for the build's `checks:` line)."""
    extra: Extra = []
    ran = 0
    statuses: dict[str, int] = {}
    for doc in docs:
        if doc.kind != "reference" or not notebook_blocks(doc):
            continue
        key = notebook_key(doc, setting)
        data = cache.get(key)
        if data is None:
            report = verify_document(doc, runner())
            ran += 1
            data = {"device": report.device, "torch": report.torch_version,
                    "isolation": list(report.isolation),
                    "blocks": [{"status": b.status, "exception": b.exception, "line": b.line,
                                "claims": [(c.verdict, c.actual) for c in b.claims]}
                               for b in report.blocks]}
            if _cacheable(report):
                cache.put(key, data)
        report = _report_from(doc, data)
        for status, n in report.statuses().items():
            statuses[status] = statuses.get(status, 0) + n
        for gap, output in gaps_from_report(doc, report):
            extra.append((doc, gap, output))
    return extra, ran, statuses


def reference_note(statuses: Mapping[str, int], carded: int) -> str:
    """`reference notes' code: 9 blocks (…); 1 wrong claim carded`: blocks that raise or
    cannot run here are counted, never carded."""
    if not statuses:
        return ""
    total = sum(statuses.values())
    parts = ", ".join(f"{n} {k}" for k, n in sorted(statuses.items()))
    raised = statuses.get("error", 0)
    tail = f"; {carded} wrong claim{'s' if carded != 1 else ''} carded" if carded else ""
    why = " (errors make no card: ankigen check shows them)" if raised else ""
    return f"; reference notes' code: {total} blocks ({parts}){why}{tail}"


def refusal(exc: Exception) -> str:
    """One line: why checks were not run and the ways on, as the runner said it
    (`runner._refusal` writes the install hint where it applies and always the opt-out),
    without its "checks not run:" lead."""
    why = str(getattr(exc, "bare", None) or exc).strip().rstrip(".")
    why = re.sub(r"^(?:checks )?(?:were )?not run: ", "", why)
    return clean(" ".join(why.split()))


def run_checks(pairs: Sequence[tuple[Document, Gap]], *, device: str, cache_dir: Path,
               progress: Callable[[str, int, int], None] | None = None,
               docs: Sequence[Document] = (), timeout_s: float = 10.0,
               unsandboxed: bool = False, sources: Mapping[str, bytes] | None = None,
               early: EarlyStart | None = None,
               timings: dict[str, tuple[float, float]] | None = None
               ) -> tuple[dict[str, CheckOutput], int, str, Extra]:
    """Run (or fetch from the cache) the checks the gaps need. Never raises on a bad check,
    nor when no runner can start here (the build goes on without checks, and says why).
    Outputs are keyed by `model.check_key`. Without a sandbox (and no opt-out), nothing
    runs: every card that would carry a check says it was not run, and why. `sources` (each
    document's bytes by path) lets recall notes' PyTorch calls be looked up (`names`).
    `early`: the server this build began starting while it parsed (`build_hook`), used
    when a check first needs one. `timings` gets the server's start, as perf_counter()s."""
    from . import names

    version = torch_version()
    if version is None:
        if early is not None:
            early.drop()
        return {}, 0, "skipped: torch is not installed (pip install '.[torch]')", []
    planned = _plan(pairs)
    setting = RunSetting(version, device, timeout_s, unsandboxed)
    cache = ResultCache(cache_dir / "checks.sqlite")
    runners: list[Any] = []
    found = names.find(docs, sources or {})

    def runner() -> Any:
        nonlocal early
        if not runners:
            from .keeper import open_runner

            if progress:
                progress("starting the check server", 0, 1)
            t0 = time.perf_counter()
            begun, early = early, None
            runners.append(begun.take() if begun is not None else
                           open_runner(device=device, timeout_s=timeout_s,
                                       unsandboxed=unsandboxed))
            if timings is not None:
                timings["server start"] = ((begun.started_at, begun.ended_at or t0) if begun
                                           else (t0, time.perf_counter()))
            if progress:
                progress("starting the check server", 1, 1)
        return runners[0]

    try:
        extra, ref_ran, ref_statuses = reference_gaps(docs, runner, cache, setting)
        outputs, ran, note = _bank_and_code(planned, cache, runner, setting, progress)
        named, name_ran, looked = names.name_gaps(
            found, runner, cache, setting,
            lambda p: _bank_and_code(p, cache, runner, setting, progress))
    except SandboxUnavailable as exc:
        unnamed = f"; {len(found.uses)} PyTorch calls in recall notes not looked up, so no " \
            "card for a wrong name" if found.uses else ""
        return _not_run(planned, exc, version), 0, f"not run: {refusal(exc)}{unnamed}", []
    except CheckError as exc:
        return {}, 0, f"skipped: {exc}", []
    finally:
        for r in runners:
            r.close()
        if early is not None:  # begun while parsing, and no check needed it
            early.drop()
        cache.close()
    note += reference_note(ref_statuses, len(extra))
    if looked:
        note += f"; {looked} PyTorch calls looked up, {len(named)} wrong"
    extra += named
    outputs.update({check_key(d.path, g): o for d, g, o in extra})
    if runners and getattr(runners[0], "started", False):  # say so: it outlives the build
        note += (f"; a warm check server stays up {runners[0].idle_s:g} s for the next run "
                 "(ankigen check-server stop)")
    if runners:
        note += "; " + summary(runners[0].isolation)
    elif planned or extra:
        note += "; isolation: nothing ran (every result came from the cache)"
    return outputs, ran + ref_ran + name_ran, note, extra


def _not_run(planned: dict[str, tuple[str, str, Fix]], exc: Exception,
             version: str) -> dict[str, CheckOutput]:
    """What a card that would have carried a check says when checks were refused."""
    why = clean(str(getattr(exc, "bare", None) or exc))
    return {key: CheckOutput(code=code, output=f"Not run when this deck was built: {why}",
                             status="not run", device="", torch_version=version, title=title)
            for key, (title, code, _fix) in planned.items()}


def _bank_and_code(planned: dict[str, tuple[str, str, Fix]], cache: ResultCache,
                   runner: Callable[[], Any], setting: RunSetting,
                   progress: Callable[[str, int, int], None] | None
                   ) -> tuple[dict[str, CheckOutput], int, str]:
    results: dict[str, dict[str, Any]] = {}
    todo: dict[str, str] = {}
    codes = [c for _t, code, fix in planned.values() for c in (code, fix[1] if fix else None) if c]
    for code in codes:
        key = setting.key("code", code)
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
            status, exception = res.status, res.exception
            if status == "error" and exhausted(exception):
                status = "crashed"  # the machine's limits, not the code's error
            elif status == "error" and (unrunnable := not_runnable_here(exception)):
                # a package not installed, the network, a GPU: says nothing about the code
                status, exception = "not runnable here", unrunnable
            exception = explain(status, exception)
            value = {"status": status, "output": _shown(res.stdout, exception),
                     "exception": exception, "device": res.device,
                     "torch": res.torch_version}
            if status in ("ok", "error"):  # timeouts, crashes, exhaustion: retried next build
                cache.put(key, value)
            results[key] = value
        ran = len(keys)
    outputs = {}
    for anchor, (title, code, fix) in planned.items():
        r = results[setting.key("code", code)]
        output = r["output"]
        if fix and r["status"] == "error":
            f = results[setting.key("code", fix[1])]
            outcome = "runs without an error" if f["status"] == "ok" else \
                f"still fails: {f.get('exception') or f['status']}"
            output += f"\n\nWith the tutor's correction, {fix[0].strip()}, the block {outcome}."
        outputs[anchor] = CheckOutput(code=code, output=output, status=r["status"],
                                      device=r["device"], torch_version=r["torch"], title=title)
    here = sum(o.status == "not runnable here" for o in outputs.values())
    failed = sum(o.status not in ("ok", "not runnable here") for o in outputs.values())
    note = f"{len(outputs)} on cards ({ran} run, {len(set(codes)) - ran} cached" + \
        (f", {failed} not ok" if failed else "") + \
        (f", {here} not runnable here" if here else "") + ")"
    return outputs, ran, note


def _shown(stdout: str, exception: str | None) -> str:
    text = stdout.rstrip()
    if exception:
        text = (text + "\n" if text else "") + exception
    return text


def sandbox_state() -> str:
    """What decides, cheaply, whether checks may run here: the platform, bubblewrap's path
    (as the runner finds it) and the kernel's user-namespace switches. Part of a build's
    up-to-date key, so a build whose checks were refused is built again once it changes."""
    parts = [sys.platform, shutil.which("bwrap") or "no bwrap"]
    for switch in ("/proc/sys/kernel/unprivileged_userns_clone",
                   "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                   "/proc/sys/user/max_user_namespaces"):
        try:
            parts.append(Path(switch).read_text().strip())
        except OSError:
            parts.append("-")
    return ",".join(parts)


def build_hook(device: str, cache_dir: Path | None = None,
               progress: Callable[[str, int, int], None] | None = None,
               timeout_s: float = 10.0, unsandboxed: bool = False
               ) -> Callable[..., tuple[dict[str, CheckOutput], int, str, Extra]]:
    from ..build import cache_dir as default_cache

    begun: list[EarlyStart] = []
    timings: dict[str, tuple[float, float]] = {}

    def hook(pairs: list[tuple[Document, Gap]], docs: Sequence[Document],
             sources: Mapping[str, bytes] | None = None
             ) -> tuple[dict[str, CheckOutput], int, str, Extra]:
        return run_checks(pairs, device=device, cache_dir=cache_dir or default_cache(),
                          progress=progress, docs=docs, timeout_s=timeout_s,
                          unsandboxed=unsandboxed, sources=sources,
                          early=begun.pop() if begun else None, timings=timings)

    def prestart(contents: Sequence[bytes]) -> None:
        """Called by the build once its parse is under way: begin starting the server now
        if these notes may need it (`early`)."""
        if begun or torch_version() is None or not may_need_checks(contents):
            return
        from .keeper import open_runner

        begun.append(EarlyStart(lambda: open_runner(device=device, timeout_s=timeout_s,
                                                     unsandboxed=unsandboxed)))

    hook.prestart = prestart  # type: ignore[attr-defined]
    hook.timings = timings  # type: ignore[attr-defined]

    # A deck built with checks on CPU is not the deck --device cuda would build, and one
    # whose checks were refused is not the deck a sandbox would build: an unchanged vault is
    # "up to date" only for the same device, time limit, runner and sandbox.
    hook.key = (f"device={device};timeout={timeout_s:g};runner={runner_version()};"  # type: ignore[attr-defined]
                f"unsandboxed={unsandboxed};sandbox={sandbox_state()}")
    return hook


__all__ = ["build_hook", "defined_names", "plan", "run_checks"]
