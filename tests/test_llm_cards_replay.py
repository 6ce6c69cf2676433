"""Recorded model runs of the card writer, replayed BY REQUEST ORDER (issue 15, item 4).

Each folder under tests/fixtures/llm-cards/runs/ is one complete run of bench/card_llm.py
over the labelled card set (`--record`): answers/0001.json … in request order and run.json
with what that run gave. Replayed by order, not by a hash of the request, so a reworded
prompt still gets the model's real answers while a change that can no longer read them (the
schema, the ids, the checks) fails here. `scripted` is a run answered by
tests/scripted_cards.mimic; a run answered by a real model is added beside it the same way.

Runs recorded before cards-llm-3 (run.json `"ids": "per-gap"`) cite each gap's lines as L1,
L2 … within the gap; the replay renumbers those cites to today's ids (the file's line
numbers) and changes nothing else. A run.json keeps the numbers the run gave under its own
checks (`result`) and, once the checks have changed since (`replayed_with`: the prompt
version whose checks), under `replayed` what replaying it through today's checks gives:
what this test holds the code to, updated when a check changes on purpose. (cards-llm-4's
front checks reject some fronts of the cards-llm-3 run: two questions in one, a lead-in
before the question; those gaps keep their offline cards. cards-llm-5's reject a front that
drops the plain question's terms and a card that drops a term of the notes' answer, and
"what you wrote" is whole sentences on every card.)
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered
from click.testing import CliRunner
from replay_openai import recorded_answers, replay, run_manifest

from ankigen.cli import main
from ankigen.llm import LLM, Endpoint

ROOT = Path(__file__).resolve().parent.parent
RUNS = sorted(p for p in (ROOT / "tests" / "fixtures" / "llm-cards" / "runs").iterdir()
              if (p / "run.json").exists())
CARDS = ROOT / "tests" / "fixtures" / "cards"


def _bench() -> Any:
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("card_llm", ROOT / "bench" / "card_llm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected(manifest: dict[str, Any]) -> dict[str, Any]:
    replayed: dict[str, Any] = manifest.get("replayed", manifest["result"])
    return replayed


def test_there_is_a_recorded_run() -> None:
    assert "scripted" in [p.name for p in RUNS]


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_the_bench_reads_every_recorded_answer_in_order(run: Path) -> None:
    manifest = run_manifest(run)
    server, script = replay(run, lifetime_s=120)
    with server as srv, LLM(Endpoint(srv.base_url, manifest["model"], "k", timeout_s=10,
                                     budget_s=120), reasks=1000) as llm:
        out = _bench().run(CARDS, llm, manifest["splits"])
        assert script.served == manifest["requests"] == len(recorded_answers(run))
    for split, want in _expected(manifest).items():
        got = out[split]
        assert got["waiting"] == []  # nothing refused, nothing malformed
        assert not [w for w in got["fell_back"] if "no usable answer" in w]
        assert (got["wrote"], got["model"]["met"], got["model"]["cards"]) == (
            want["wrote"], want["model"], want["cards"])


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_ankigen_build_llm_replays_a_split_and_anki_renders_it(run: Path, tmp_path: Path) -> None:
    manifest = run_manifest(run)
    want = _expected(manifest)["heldout"]
    vault = Path(shutil.copytree(CARDS / "heldout", tmp_path / "heldout"))
    out = tmp_path / "heldout.apkg"
    server, script = replay(run, lifetime_s=120)  # the held-out split is asked first
    with server as srv:
        r = CliRunner().invoke(main, ["build", str(vault), "-o", str(out), "--no-checks", "--json",
                                      "--llm", "--base-url", srv.base_url, "--model",
                                      manifest["model"]])
        assert r.exit_code == 0, r.output
        assert script.served == want["requests"]
    result = json.loads(r.stdout)
    assert result["warnings"] == []
    assert (result["model_wrote"], result["notes"]) == (want["wrote"], want["cards"])
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        log = import_apkg(col, out)
        assert log.new == want["cards"]
        cards = rendered(col)
        assert len(cards) == want["cards"] and all(q.strip() and a.strip() for _, q, a in cards)
    finally:
        col.close()
