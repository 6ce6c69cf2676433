"""Replays a recorded model run by request order: the n-th completion request gets the n-th
recorded answer, whatever its prompt says.

The same idea as ../shared/tools/replay_llm.py (an OpenAI-compatible endpoint answering from
recorded answers), with one difference: that tool keys answers by a hash of the request, so a
reworded prompt finds no answer; here the order of the requests is the key, so a reworded
prompt still gets the model's real answer while a parser that cannot read it fails.

A recorded run is a folder (bench/grader_model_run.py --record writes one):

    run.json            {"model": ..., "folders": [...], "requests": N, "result": {...}}
    answers/0001.json   the assistant's content for request 1, byte for byte
    answers/0002.json   ...

Served by fake_openai.FakeOpenAI (real HTTP on 127.0.0.1, stops by itself). A request past
the last recorded answer gets a 400 saying so, so the client fails fast instead of waiting.

    python tests/replay_openai.py RUN_FOLDER    # serves it by hand; prints the base URL
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI, Reply
from scripted_cards import data_of


def recorded_answers(run: Path) -> list[str]:
    """The recorded answers of a run folder, in request order (0001.json, 0002.json, …)."""
    files = sorted((run / "answers").glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{run}/answers: no recorded answers")
    numbers = [int(f.stem) for f in files]
    if numbers != list(range(1, len(files) + 1)):
        raise ValueError(f"{run}/answers: expected 0001.json … {len(files):04d}.json in order")
    return [f.read_text(encoding="utf-8") for f in files]


def run_manifest(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "run.json").read_text(encoding="utf-8"))
    return data


def renumbered(answer: str, body: dict[str, Any]) -> str:
    """A recorded answer written when each gap's lines and passages were numbered L1…, S1…
    within the gap (prompts before cards-llm-3), with its cites put in today's ids: the i-th
    line or passage that request showed the same gap. Only the ids change; what the model
    wrote, and any id the gap did not have (which stays unknown), are kept as they were."""
    try:
        cards = json.loads(answer)["cards"]
        gaps = {g["id"]: g for g in data_of(body)["gaps"]}
    except (ValueError, KeyError, TypeError):
        return answer  # not a card answer a renumbering applies to: served as recorded
    for card in cards if isinstance(cards, list) else []:
        gap = gaps.get(card.get("gap")) if isinstance(card, dict) else None
        if gap is None or not isinstance(card.get("cites"), list):
            continue
        ids = {f"L{i}": row[0] for i, row in enumerate(gap["lines"], start=1)}
        ids |= {f"S{i}": row[0] for i, row in enumerate(gap["passages"], start=1)}
        card["cites"] = [ids.get(c, f"{c} (no such id then)") if c != "A" else c
                         for c in card["cites"]]
    return json.dumps({"cards": cards}, ensure_ascii=False)


class InOrder:
    """A FakeOpenAI script: the recorded answers one after another, then a 400.
    `per_gap_ids`: the run was recorded with per-gap ids (run.json `"ids": "per-gap"`)."""

    def __init__(self, answers: list[str], per_gap_ids: bool = False):
        self.answers = answers
        self.per_gap_ids = per_gap_ids
        self.served = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            n = self.served
            self.served += 1
        if n >= len(self.answers):
            return Reply(f"no recorded answer for request {n + 1}: the run recorded "
                         f"{len(self.answers)}", status=400)
        if self.per_gap_ids:
            return Reply(renumbered(self.answers[n], body))
        return Reply(self.answers[n])


def replay(run: Path, lifetime_s: float = 600.0) -> tuple[FakeOpenAI, InOrder]:
    script = InOrder(recorded_answers(run), run_manifest(run).get("ids") == "per-gap")
    call: Callable[[dict[str, Any]], Reply] = script
    return FakeOpenAI(call, lifetime_s=lifetime_s), script


if __name__ == "__main__":
    server, _ = replay(Path(sys.argv[1]), lifetime_s=3 * 3600)
    with server as srv:
        print(srv.base_url, flush=True)
        threading.Event().wait(3 * 3600)
