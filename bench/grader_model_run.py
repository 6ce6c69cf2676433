"""Measure the grader against the labelled sets, offline or with a model, split by split.

    # offline (no endpoint): both splits
    .venv/bin/python bench/grader_model_run.py --store-report /tmp/offline.json

    # with a model behind ../shared/tools/replay_llm.py (answers keyed by request hash)
    python3 ../shared/tools/replay_llm.py /tmp/store 8765 &
    .venv/bin/python bench/grader_model_run.py --base-url http://127.0.0.1:8765/v1 \
        --store-report /tmp/model.json --record tests/fixtures/grader-replay/model-run

Re-runnable round by round: a session whose request the endpoint refuses (the replay tool's
400 for a request it has no answer to yet) is reported as waiting and the others go on, so
one run leaves every session's next request in STORE/pending/. Answer those, run again;
the exit status is 3 while any session waits, 0 once every session was graded. Nothing is
cached between runs (each run asks every request again; the replay tool answers the ones it
knows at once), so the numbers always come from one complete run.

Per split (tuning `tests/fixtures/labelled`, validation `tests/fixtures/labelled-validation`,
`tests/fixtures/labelled-validation-2` and `tests/fixtures/labelled-validation-3`, held-out
`tests/fixtures/labelled-heldout`) it
prints agreement, Cohen's κ, false-accept, omission recall, false omissions and a
per-session table; with a model also the doubts the model raised ("doubtful (not in your
sources)") and how many sit in a paragraph the tutor marked 🔴 (their precision). `--record
DIR` keeps the model's answers of a complete run in request order, with run.json, for
tests/test_grader_replay.py to replay.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ankigen.errors import EndpointError, ModelOutputError  # noqa: E402
from ankigen.llm import endpoint_from  # noqa: E402
from ankigen.model import Mark  # noqa: E402
from ankigen.parse import parse_text  # noqa: E402
from grader.code import SharedRunner  # noqa: E402
from grader.context import DEFAULT_CONTEXT_TOKENS  # noqa: E402
from grader.evaluate import (  # noqa: E402
    EvalResult,
    SessionResult,
    evaluate_session,
    label_name,
    result_of,
    sessions_in,
)
from grader.grade import GradeOptions  # noqa: E402
from grader.model import Verdict  # noqa: E402
from grader.recall import recall_from_text  # noqa: E402

SPLITS = {"tuning": ROOT / "tests/fixtures/labelled",
          "validation": ROOT / "tests/fixtures/labelled-validation",
          "validation-2": ROOT / "tests/fixtures/labelled-validation-2",
          "validation-3": ROOT / "tests/fixtures/labelled-validation-3",
          "held-out": ROOT / "tests/fixtures/labelled-heldout"}
WAITING = 3


class Recorder:
    """A loopback proxy in front of the endpoint that keeps every answered completion's
    content, in the order the grader asked."""

    def __init__(self, upstream: str, timeout_s: float):
        self.upstream = upstream.rstrip("/")
        self.timeout_s = timeout_s
        self.answers: list[str] = []
        self.refused = 0
        lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                suffix = self.path.split("/v1", 1)[-1] if "/v1" in self.path else self.path
                req = urllib.request.Request(
                    recorder.upstream + suffix, data=body, method="POST",
                    headers={k: v for k, v in self.headers.items()
                             if k.lower() in ("content-type", "authorization")})
                try:
                    with urllib.request.urlopen(req, timeout=recorder.timeout_s) as resp:
                        status, data = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                except (urllib.error.URLError, TimeoutError) as e:
                    status, data = 502, json.dumps({"error": {"message": str(e)}}).encode()
                with lock:
                    if status == 200:
                        content = json.loads(data)["choices"][0]["message"]["content"]
                        recorder.answers.append(content)
                    else:
                        recorder.refused += 1
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def doubts(result: EvalResult) -> tuple[int, int]:
    """(doubts the model raised, those on a line inside a paragraph the tutor marked 🔴)."""
    raised = on_red = 0
    for s in result.sessions:
        original = Path(s.report.recall).read_text(encoding="utf-8")
        marked = parse_text(original, kind="recall")
        red_lines: set[int] = set()
        for marked_part in marked.parts:
            for a in marked_part.assessments:
                if a.mark is Mark.RED:
                    red_lines.update(range(marked_part.span.start, a.line))
        # the marks were taken out before grading: map the graded lines back by their text
        graded = recall_from_text(original, s.report.recall).lines
        original_lines = original.split("\n")
        for part in s.report.parts:
            for j in part.judgements:
                if j.verdict is Verdict.NOT_IN_SOURCE and j.doubt:
                    raised += 1
                    text = graded[j.claim.line - 1]
                    at = [n for n, ln in enumerate(original_lines, 1) if ln == text]
                    on_red += any(n in red_lines for n in at)
    return raised, on_red


def table(name: str, result: EvalResult, waiting: list[str], model: bool,
          aggregate_only: bool) -> dict[str, Any]:
    print(f"\n== {name}: {len(result.sessions)} sessions, {len(result.pairs)} marked parts"
          + (f", {len(waiting)} waiting for answers" if waiting else ""))
    if aggregate_only:
        return _aggregate(result, waiting, model)
    print(f"  {'session':<24} agree  tutor    grader   omissions found  false omissions")
    for s in result.sessions:
        agree = sum(t == g for t, g in s.counted)
        found = sum(f for _, _, f in s.omissions)
        print(f"  {s.name:<24} {agree}/{len(s.counted)}    "
              f"{''.join(label_name(m) for m in s.tutor)} {''.join(label_name(m) for m in s.grader)}"
              f"  {found}/{len(s.omissions)}              {s.false_omissions}")
    for w in waiting:
        print(f"  {w}")
    data = _aggregate(result, waiting, model)
    data["sessions"] = result.to_dict()["sessions"]
    return data


def _aggregate(result: EvalResult, waiting: list[str], model: bool) -> dict[str, Any]:
    """The split's numbers, printed and returned, with nothing per session (so a held-out
    split can be measured without anyone reading its sessions)."""
    far, rec = result.false_accept, result.omission_recall
    found, named = result.omissions_found
    print(f"  agreement {result.agreement:.0%}  κ {result.kappa:.2f}  false-accept "
          f"{'n/a' if far is None else f'{far:.0%}'}  omission recall "
          f"{'n/a' if rec is None else f'{rec:.0%}'} ({found} of {named})  false omissions "
          f"{result.false_omissions} ({result.false_omissions_per_part:.2f} per part)")
    data = {k: v for k, v in result.to_dict().items() if k != "sessions"}
    data["waiting"] = len(waiting)
    if model:
        raised, on_red = doubts(result)
        print(f"  doubts raised {raised}, in a paragraph the tutor marked 🔴: {on_red}")
        data["doubts"] = {"raised": raised, "in_red_paragraphs": on_red}
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint; none: offline")
    ap.add_argument("--model", default="replay", help="model name at the endpoint")
    ap.add_argument("--split", action="append", choices=sorted(SPLITS),
                    help="only this split (repeatable; default: all)")
    ap.add_argument("--store-report", type=Path, help="write every number as JSON here")
    ap.add_argument("--record", type=Path,
                    help="keep the model's answers of a complete run here, in request order")
    ap.add_argument("--no-code", action="store_true", help="do not run recalled code")
    ap.add_argument("--offline-green", action=argparse.BooleanOptionalAction, default=False,
                    help="offline: give 🟢 where one passage backs each statement (off, the "
                         "grader's default)")
    ap.add_argument("--aggregate-only", action="store_true",
                    help="print and store each split's totals only, nothing per session")
    ap.add_argument("--context-tokens", type=int, default=DEFAULT_CONTEXT_TOKENS)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    args = ap.parse_args()
    names = args.split or list(SPLITS)
    endpoint = endpoint_from(args.base_url, args.model, timeout_s=args.timeout,
                             budget_s=args.timeout * 4) if args.base_url else None
    recorder = Recorder(endpoint.base_url, args.timeout) if endpoint else None
    out: dict[str, Any] = {"model": args.model if endpoint else None,
                           "context_tokens": args.context_tokens, "splits": {}}
    waiting_total = 0
    evaluated: dict[str, EvalResult] = {}
    started = time.monotonic()
    with SharedRunner() as runner:
        if recorder:
            recorder.__enter__()
        try:
            options = GradeOptions(
                endpoint=None if recorder is None or endpoint is None else
                endpoint_from(recorder.base_url, args.model, timeout_s=args.timeout,
                              budget_s=args.timeout * 4),
                run_code=not args.no_code, use_cache=False, context_tokens=args.context_tokens,
                offline_green=args.offline_green)
            for name in names:
                results: list[SessionResult] = []
                waiting: list[str] = []
                for session in sessions_in(SPLITS[name]):
                    try:
                        results.append(evaluate_session(session, options,
                                                        None if args.no_code else runner))
                    except (EndpointError, ModelOutputError) as e:
                        waiting.append(f"{session.name}: waiting ({e.bare})")
                waiting_total += len(waiting)
                evaluated[name] = result_of(results, options)
                out["splits"][name] = table(name, evaluated[name],
                                            [] if args.aggregate_only else waiting,
                                            endpoint is not None, args.aggregate_only)
                out["splits"][name]["waiting"] = len(waiting)
        finally:
            if recorder:
                recorder.__exit__()
    print(f"\n{time.monotonic() - started:.0f} s" + (
        f"; {len(recorder.answers)} requests answered, {recorder.refused} refused" if recorder
        else ""))
    if args.store_report:
        args.store_report.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    if waiting_total:
        print(f"{waiting_total} session(s) wait for answers: answer the endpoint's pending "
              "requests and run this again")
        return WAITING
    if args.record and recorder:
        answers = args.record / "answers"
        answers.mkdir(parents=True, exist_ok=True)
        for old in answers.glob("*.json"):
            old.unlink()
        for n, content in enumerate(recorder.answers, start=1):
            (answers / f"{n:04d}.json").write_text(content, encoding="utf-8")
        manifest = {"model": args.model, "splits": names, "requests": len(recorder.answers),
                    "sessions": {n: [s.name for s in sessions_in(SPLITS[n])] for n in names},
                    "context_tokens": args.context_tokens, "run_code": not args.no_code,
                    "result": {n: {k: v for k, v in d.items() if k != "sessions"}
                               | {"marks": {s.name: [label_name(m) for m in s.grader]
                                            for s in evaluated[n].sessions}}
                               for n, d in out["splits"].items()}}
        (args.record / "run.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1)
                                              + "\n")
        print(f"recorded {len(recorder.answers)} answers in {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
