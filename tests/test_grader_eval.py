"""`grader eval`: agreement with a tutor's marks on labelled sessions, offline and with a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI
from scripted_model import Tutor

from ankigen.llm import Endpoint
from ankigen.model import Mark
from ankigen.parse import parse_text
from grader.cli import main
from grader.errors import EvalError
from grader.evaluate import cohen_kappa, evaluate, left_out_terms, tutor_labels
from grader.grade import GradeOptions

pytestmark = pytest.mark.timeout(120)
FIXTURES = Path(__file__).parent / "fixtures"
G, Y, R = Mark.GREEN, Mark.YELLOW, Mark.RED


def test_kappa_is_one_for_perfect_agreement_and_zero_for_chance():
    assert cohen_kappa([(G, G), (Y, Y), (R, R)]) == 1.0
    # Both raters always say 🟡: agreement is total but carries no information.
    assert cohen_kappa([(Y, Y), (Y, Y)]) == 1.0
    # 4 parts, 2 agree; each rater says 🟢 half the time: p_o = .5, p_e = .5 → κ = 0.
    assert cohen_kappa([(G, G), (G, R), (R, G), (R, R)]) == 0.0
    # A textbook case: p_o = 0.7, p_e = 0.5 → κ = 0.4.
    pairs = [(G, G)] * 4 + [(R, R)] * 3 + [(G, R)] * 1 + [(R, G)] * 2
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_labels_are_each_parts_worst_mark_and_omissions_come_from_the_feedback():
    text = ("# Notes\n\nSo, optimizers. Momentum speeds things up.\n\n"
            "🟡 => you didn't mention torch.optim.SGD(momentum=0.9) and Nesterov momentum.\n\n"
            "🟢 => otherwise good.\n\n---\n\nSo, dropout. It drops units.\n\n"
            "🔴 => it is off at inference.\n\n---\n\nSo, nothing marked here at all.\n")
    doc = parse_text(text, kind="recall")
    assert tutor_labels(doc) == (Y, R, None)
    assert left_out_terms(doc) == [(0, "torch.optim.SGD(momentum=0.9)"), (0, "Nesterov momentum")]


def test_what_the_tutor_adds_after_a_comma_is_no_second_omission():
    """"You left out X, which …" names X and explains it (the second validation split's
    tutor wrote so: read as two omissions, or none when the whole ran past eight words);
    "padding, stride and dilation" names three."""
    feedback = ["right, but you left out fake.detach(), which keeps the discriminator's loss "
                "from backpropagating into the generator.",
                "correct, but you didn't mention scaler.unscale_(optimizer), which you need "
                "before gradient clipping.",
                "correct, but you left out checkpoint_sequential, the way to checkpoint a "
                "whole stack.",
                "right, but you skipped padding, stride and dilation."]
    text = "# Notes\n\n" + "\n\n---\n\n".join(
        f"So, part {i}. It says something.\n\n🟡 => {f}" for i, f in enumerate(feedback)) + "\n"
    assert left_out_terms(parse_text(text, kind="recall")) == [
        (0, "fake.detach()"), (1, "scaler.unscale_(optimizer)"), (2, "checkpoint_sequential"),
        (3, "padding"), (3, "stride"), (3, "dilation")]


def _labelled(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(FIXTURES / "labelled" / name, tmp_path / "labelled" / name)
    return tmp_path / "labelled"


def test_offline_eval_never_accepts_falsely_and_finds_some_omissions(tmp_path):
    folder = _labelled(tmp_path, "gradient-descent", "optimizers")
    result = evaluate(folder, GradeOptions(run_code=False))
    assert result.mode == "offline" and len(result.pairs) == 12
    assert result.false_accept == 0.0 and G not in [g for _, g in result.pairs]
    gd = result.sessions[0]
    assert gd.name == "gradient-descent"
    assert gd.tutor == (G, R, Y, G, R, Y)
    assert (5, "hardware optimization", True) in gd.omissions
    assert sum(sum(row.values()) for row in result.confusion.values()) == 12
    data = result.to_dict()
    assert data["parts"] == 12 and data["false_accept_rate"] == 0.0
    assert 0.0 < data["omission_recall"] <= 1.0


def test_eval_with_a_model_makes_two_calls_per_session(tmp_path):
    folder = _labelled(tmp_path, "gradient-descent")
    tutor = Tutor(wrong={"cubic in the number of training instances": "features grows large",
                         "cost still goes down at every single step": "decreasing only on average"},
                  omit={"hardware optimization": (6, "minor"), "Feature scaling": (3, "minor")})
    with FakeOpenAI(tutor) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "k", timeout_s=5, budget_s=30)
        result = evaluate(folder, GradeOptions(endpoint=endpoint, cache_path=tmp_path / "c.db"))
        assert srv.completions == 2
    (session,) = result.sessions
    assert result.mode == "llm" and result.model == "scripted"
    assert session.grader == (G, R, Y, G, R, Y)
    assert result.agreement == 1.0 and result.kappa == 1.0 and result.false_accept == 0.0
    assert result.omission_recall == 1.0


def test_eval_cli_prints_the_measures(tmp_path):
    folder = _labelled(tmp_path, "optimizers")
    r = CliRunner().invoke(main, ["eval", str(folder), "--no-code"])
    assert r.exit_code == 0, r.output
    assert "1 sessions, 6 marked parts, graded offline" in r.stdout
    assert "confusion (rows: tutor, columns: grader; · = no mark)" in r.stdout
    assert "false-accept (🟢 where the tutor said 🔴) 0%" in r.stdout
    j = CliRunner().invoke(main, ["eval", str(folder), "--no-code", "--json"])
    assert json.loads(j.stdout)["sessions"][0]["name"] == "optimizers"


def test_eval_of_a_folder_without_sessions_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "empty")])
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == (f"grader: error: {tmp_path / 'empty'}: no labelled "
                                         "sessions: expected <name>/recall.md and "
                                         "<name>/sources/ inside")
    with pytest.raises(EvalError, match="no such folder"):
        evaluate(tmp_path / "missing", GradeOptions(run_code=False))
