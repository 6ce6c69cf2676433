"""Score model-written cards (`ankigen build --llm`) against the card rubric, beside offline.

    # a model behind ../shared/tools/replay_llm.py (answers keyed by request hash)
    python3 ../shared/tools/replay_llm.py /tmp/cards-store 8766 &
    .venv/bin/python bench/card_llm.py --base-url http://127.0.0.1:8766/v1 \
        --record tests/fixtures/llm-cards/runs/model

Builds every gap of the labelled card set (tests/fixtures/cards/<split>/*.md, both splits)
with the card writer, one request per notes file in file order, and scores every card by
every rule of bench/card_rubric.py twice: the offline card and the card a model wrote (the
offline card where the model's was rejected). Prints per split the share meeting every rule,
each rule's misses offline vs with the model, how many cards the model wrote and why the
others fell back, and the model cards' misses.

`--aggregate-only` (a split name, `heldout` when none is given) prints that split's totals only:
every rule met, misses per rule, how many cards the model wrote and how many fell back per
reason, never a card or a line; `--json` gives the same. Score a held-out split that way.

Re-runnable round by round: a file whose request the endpoint refuses (the replay tool's 400
for a request it has no answer to yet) keeps its offline cards and is reported as waiting;
the rest go on, so one run leaves every file's request in STORE/pending/. Answer those, run
again; the exit status is 3 while any file waits, 0 once every file was answered. Nothing is
cached between runs, so the numbers always come from one complete run. `--record DIR` keeps
that run's answers in request order (answers/0001.json …, run.json with the numbers) for
tests/test_llm_cards_replay.py to replay by order.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Set
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ankigen.llm import LLM, endpoint_from  # noqa: E402
from ankigen.llmcards import PROMPT_VERSION, Written, write  # noqa: E402
from ankigen.model import Document, Gap, check_key  # noqa: E402
from ankigen.text import read_notes  # noqa: E402
from bench.card_rubric import (  # noqa: E402
    DEFAULT_SET,
    Result,
    add_split_visibility,
    hidden_splits,
    misses_by_rule,
    score_split,
    splits,
)


class Recorder:
    """A loopback proxy in front of the endpoint that keeps each answered completion's
    content in request order (the card writer asks one file at a time)."""

    def __init__(self, upstream: str, timeout_s: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.timeout_s = timeout_s
        self.answers: list[str] = []
        self.refused = 0
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                suffix = self.path.removeprefix("/v1")
                req = urllib.request.Request(recorder.upstream + suffix, data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": self.headers.get("Authorization", "")})
                try:
                    with urllib.request.urlopen(req, timeout=recorder.timeout_s) as resp:
                        status, data = resp.status, resp.read()
                    content = json.loads(data)["choices"][0]["message"]["content"]
                    recorder.answers.append(content)
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                    recorder.refused += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def run(root: Path, llm: LLM, names: list[str] | None = None) -> dict[str, Any]:
    """Offline and model scores per split, and what the model did."""
    out: dict[str, Any] = {}
    for folder in splits(root):
        if names and folder.name not in names:
            continue
        written: dict[str, Written] = {}
        offline = score_split(folder)
        model = score_split(folder, functools.partial(_rewrite, llm, written))
        outcomes = [o for w in written.values() for o in w.outcomes]
        out[folder.name] = {
            "offline": _scores(offline), "model": _scores(model),
            "wrote": sum(o.gap is not None for o in outcomes),
            "fell_back": [f"{o.file}:{o.line}: {o.reason}" for o in outcomes if o.gap is None],
            "waiting": sorted({f"{f}: {p}" for f, w in written.items() for p in w.problems}),
            "model_misses": [{"file": r.file, "line": r.line, "front": r.front, "broke": r.broke}
                             for r in model if not r.ok],
        }
    return out


def _rewrite(llm: LLM, written: dict[str, Written], path: Path, doc: Document,
             gaps: list[Gap]) -> list[Gap]:
    """One notes file's gaps as the model words them (one request), the rest as they were."""
    notes = read_notes(path, path.name).text
    w = write(llm, [doc], {doc.path: notes}, [], {doc.path: gaps}, None)
    written[doc.path] = w
    return [w.gaps.get(check_key(doc.path, g), g) for g in gaps]


def _scores(results: list[Result]) -> dict[str, Any]:
    met = sum(r.ok for r in results)
    return {"met": met, "cards": len(results), "share": met / len(results) if results else 0.0,
            "misses_by_rule": misses_by_rule(results)}


def aggregate(s: dict[str, Any]) -> dict[str, Any]:
    """One split's results without a card: totals, misses per rule, fallbacks per reason
    (the reason's words before its details: "rejected: the front gives away the answer")."""
    reasons: dict[str, int] = {}
    for why in s["fell_back"]:
        reason = re.split(r" \(|: '| '|\d", why.split(": ", 1)[1], maxsplit=1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return {"offline": s["offline"], "model": s["model"], "wrote": s["wrote"],
            "fell_back": len(s["fell_back"]), "fell_back_by_reason": dict(sorted(reasons.items())),
            "waiting": len(s["waiting"])}


def show(out: dict[str, Any], hidden: Set[str] = frozenset()) -> None:
    for split, s in out.items():
        off, mod = s["offline"], s["model"]
        print(f"{split}: every rule met: offline {off['met']}/{off['cards']} ({off['share']:.0%}), "
              f"model {mod['met']}/{mod['cards']} ({mod['share']:.0%}); the model wrote "
              f"{s['wrote']}, {len(s['fell_back'])} kept offline")
        for name in sorted(set(off["misses_by_rule"]) | set(mod["misses_by_rule"])):
            a, b = off["misses_by_rule"].get(name, 0), mod["misses_by_rule"].get(name, 0)
            worse = "  WORSE with the model" if b > a else ""
            print(f"  {name:<40} missed offline {a:>2}, with the model {b:>2}{worse}")
        if split in hidden:
            a = aggregate(s)
            for reason, n in a["fell_back_by_reason"].items():
                print(f"  kept offline: {n} x {reason}")
            if a["waiting"]:
                print(f"  WAITING: {a['waiting']} file(s)")
            continue
        for why in s["fell_back"]:
            print(f"  kept offline: {why}")
        for w in s["waiting"]:
            print(f"  WAITING: {w}")
        for m in s["model_misses"]:
            print(f"  MISS {m['file']}:{m['line']} {m['front'][:100]!r}")
            for why in m["broke"]:
                print(f"       - {why}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_SET)
    ap.add_argument("--base-url", required=True, help="the endpoint (the replay tool's URL)")
    ap.add_argument("--model", default="replay", help="model name to send [replay]")
    ap.add_argument("--split", action="append", help="only these splits (folder names)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per request [600]")
    ap.add_argument("--budget", type=float, default=3600.0, help="seconds for all calls [3600]")
    ap.add_argument("--record", type=Path, help="keep a complete run's answers here, in order")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    add_split_visibility(ap, ", no card")
    args = ap.parse_args(argv)
    hidden = hidden_splits(args)
    endpoint = endpoint_from(args.base_url, args.model)
    assert endpoint is not None
    with Recorder(endpoint.base_url, args.timeout) as rec:
        proxied = endpoint_from(rec.base_url, args.model, timeout_s=args.timeout,
                                budget_s=args.budget)
        assert proxied is not None
        out: dict[str, Any] = {}
        asked: dict[str, int] = {}  # requests answered per split, for replaying one split
        with LLM(proxied, reasks=1000) as llm:
            for folder in splits(args.root):
                if args.split and folder.name not in args.split:
                    continue
                before = len(rec.answers)
                out.update(run(args.root, llm, [folder.name]))
                asked[folder.name] = len(rec.answers) - before
    waiting = [w for s in out.values() for w in s["waiting"]]
    if args.json:
        print(json.dumps({k: aggregate(v) if k in hidden else v for k, v in out.items()},
                         indent=1, ensure_ascii=False))
    else:
        show(out, hidden)
        print(f"{len(rec.answers)} requests answered, {rec.refused} refused")
    if waiting:
        print(f"{len(waiting)} file(s) waiting for an answer: answer the pending requests and "
              "run again", file=sys.stderr)
        return 3
    if args.record:
        answers = args.record / "answers"
        answers.mkdir(parents=True, exist_ok=True)
        for old in answers.glob("*.json"):
            old.unlink()
        for n, content in enumerate(rec.answers, start=1):
            (answers / f"{n:04d}.json").write_text(content, encoding="utf-8")
        manifest = {"model": args.model, "prompt_version": PROMPT_VERSION, "splits": list(out),
                    "requests": len(rec.answers),
                    "result": {k: {"requests": asked[k], "offline": v["offline"]["met"],
                                   "model": v["model"]["met"], "cards": v["model"]["cards"],
                                   "wrote": v["wrote"]}
                               for k, v in out.items()}}
        (args.record / "run.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1)
                                              + "\n", encoding="utf-8")
        print(f"recorded {len(rec.answers)} answers in {args.record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
