"""API names the learner wrote are checked by running them (ankigen's names check): a name
that does not exist is a 🔴, whatever the sources or a model say. Real sandboxed lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai import FakeOpenAI
from scripted_model import Tutor

from ankigen.llm import Endpoint
from ankigen.model import Mark
from ankigen.parse import parse_text
from grader.grade import GradeOptions, grade_recall
from grader.recall import recall_from_text
from grader.sources import load_sources

pytestmark = pytest.mark.timeout(120)
SOURCES = Path(__file__).parent / "fixtures" / "labelled" / "optimizers" / "sources"
LOOP = """# Notes

So, the training loop in PyTorch. You compute the loss with the criterion, then you call
model.drop() to clear the old gradients, loss.backward() and optimizer.step() to update.
"""
SAID = ("`model.drop()` does not exist: looked up on a real nn.Module (torch as installed), "
        "it raises AttributeError: 'Model' object has no attribute 'drop'")


@pytest.fixture(scope="module")
def sources():
    return load_sources([SOURCES])


def test_a_name_that_does_not_exist_is_red_by_execution(sources):
    report = grade_recall(recall_from_text(LOOP, "loop.md"), sources, GradeOptions())
    (part,) = report.parts
    assert part.mark is Mark.RED
    assert [(n.line, n.call) for n in part.names] == [(4, "model.drop()")]
    red = next(a for a in part.assessments if a.mark is Mark.RED)
    assert red.feedback == SAID and red.after_line == 4
    doc = parse_text(report.graded_markdown, "graded.md")
    assert doc.parts[0].assessments[0].feedback == SAID
    # the names that exist (loss.backward, optimizer.step) say nothing
    assert report.to_dict()["parts"][0]["names"][0]["part"] == 1


def test_a_model_that_calls_it_supported_cannot_make_it_green(tmp_path, sources):
    with FakeOpenAI(Tutor()) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "k", timeout_s=5, budget_s=30)
        report = grade_recall(recall_from_text(LOOP, "loop.md"), sources, GradeOptions(
            endpoint=endpoint, cache_path=tmp_path / "c.db"))
    assert report.marks == (Mark.RED,)
    assert any(a.feedback == SAID for a in report.parts[0].assessments)


def test_names_are_not_judged_without_running_them(sources):
    report = grade_recall(recall_from_text(LOOP, "loop.md"), sources,
                          GradeOptions(run_code=False))
    assert report.parts[0].names == () and report.marks != (Mark.RED,)
