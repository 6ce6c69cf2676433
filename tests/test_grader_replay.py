"""Recorded model runs replayed by request order: the grader must still read every real
answer it was given, use each exactly once, and reach the same marks (tests/fixtures/
grader-replay/README.md). A reworded prompt gets the same answers; a parser or schema
change that cannot read them fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_openai import recorded_answers, replay, run_manifest

from ankigen.llm import Endpoint
from grader.code import SharedRunner
from grader.evaluate import evaluate_session, label_name, result_of
from grader.grade import GradeOptions

pytestmark = pytest.mark.timeout(300)
FIXTURES = Path(__file__).parent / "fixtures"
RUNS = sorted(p for p in (FIXTURES / "grader-replay").iterdir() if p.is_dir())
SPLITS = {"tuning": FIXTURES / "labelled", "held-out": FIXTURES / "labelled-heldout"}


def test_there_is_a_recorded_run():
    assert "scripted-tuning" in [p.name for p in RUNS]
    for run in RUNS:
        assert (run / "run.json").is_file(), f"{run.name}: no run.json"
        assert len(recorded_answers(run)) == run_manifest(run)["requests"]


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_recorded_run_replays_to_the_same_marks(run, tmp_path):
    manifest = run_manifest(run)
    server, script = replay(run, lifetime_s=280)
    with server as srv, SharedRunner() as runner:
        endpoint = Endpoint(srv.base_url, manifest["model"], "k", timeout_s=30, budget_s=120)
        options = GradeOptions(endpoint=endpoint, run_code=manifest["run_code"],
                               use_cache=False, context_tokens=manifest["context_tokens"])
        for split in manifest["splits"]:
            names = manifest["sessions"][split]
            results = [evaluate_session(SPLITS[split] / name, options,
                                        runner if manifest["run_code"] else None)
                       for name in names]
            # what the recorded answers give under today's rules: `replayed` where a
            # deliberate change of how verdicts become marks moved them from what the run
            # gave (`result`, kept as recorded)
            want = manifest.get("replayed", manifest["result"])[split]
            got = result_of(results, options)
            assert {s.name: [label_name(m) for m in s.grader] for s in got.sessions} == \
                want["marks"]
            assert (round(got.agreement, 4), round(got.kappa, 4)) == \
                (want["agreement"], want["kappa"])
            assert list(got.omissions_found) == want["omissions_found"]
            assert got.false_omissions == want["false_omissions"]
        refused = [r for r in srv.requests if len(r["messages"]) > 2]
        assert script.served == manifest["requests"] == len(srv.requests)
        assert refused == []  # no re-ask: every recorded answer was read as it came


def _first_session(run: Path):
    manifest = run_manifest(run)
    split = manifest["splits"][0]
    name = manifest["sessions"][split][0]
    server, _ = replay(run, lifetime_s=100)
    with server as srv, SharedRunner() as runner:
        endpoint = Endpoint(srv.base_url, manifest["model"], "k", timeout_s=10, budget_s=60)
        options = GradeOptions(endpoint=endpoint, run_code=manifest["run_code"],
                               use_cache=False, context_tokens=manifest["context_tokens"])
        result = evaluate_session(SPLITS[split] / name, options, runner)
    return result, manifest["result"][split]["marks"][name]


def test_a_reworded_prompt_still_gets_the_recorded_answers(monkeypatch):
    run = FIXTURES / "grader-replay" / "scripted-tuning"
    import grader.judge as judge

    for name in ("DECOMPOSE_SYSTEM", "JUDGE_WHOLE_SYSTEM", "JUDGE_SYSTEM"):
        monkeypatch.setattr(judge, name, getattr(judge, name).replace(
            "You", "Reworded: you", 1))
    result, marks = _first_session(run)
    assert [label_name(m) for m in result.grader] == marks


def test_an_answer_the_parser_cannot_read_fails_instead_of_grading(tmp_path):
    """The judge's answer where the split's was recorded: the grader says so and stops."""
    from grader.errors import ModelOutputError

    run = tmp_path / "swapped"
    (run / "answers").mkdir(parents=True)
    src = FIXTURES / "grader-replay" / "scripted-tuning"
    (run / "run.json").write_text((src / "run.json").read_text())
    answers = recorded_answers(src)
    for n, text in enumerate([answers[1], answers[1], answers[0]], start=1):
        (run / "answers" / f"{n:04d}.json").write_text(text)
    with pytest.raises(ModelOutputError, match="answered malformed output twice"):
        _first_session(run)
