"""Which omissions a part is marked for (grader/marks.py `sort_omissions`), over the real
client and the scripted loopback server: a gap is 🟡, never 🔴; beside a contradiction or a
major gap, or naming what the tutor supplied after "I forgot the name", it is listed as
"also in the source (not marked)"; two points about one idea are one; at most two marked."""

from __future__ import annotations

from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered
from fake_openai import FakeOpenAI
from scripted_model import Tutor

from ankigen.build import build
from ankigen.llm import Endpoint
from ankigen.model import Mark
from ankigen.parse import parse_text
from grader.grade import GradeOptions, grade_recall
from grader.recall import load_recall, recall_from_text, supplied_names
from grader.sources import load_sources

pytestmark = pytest.mark.timeout(60)
FIXTURES = Path(__file__).parent / "fixtures"
RECALL = FIXTURES / "grader-omission-rules" / "recall.md"
TUTOR = Tutor(
    wrong={"learns its own weights": "Pooling layers have no trainable parameters"},
    omit={"feature map": (1, "major"), "zero padding": (1, "major"),
          "zeros are added around the input": (1, "minor"), "stride": (1, "minor"),
          "memory use": (2, "major"),
          "optimizer": (3, "major"), "computes the loss": (3, "major"),
          "number of parameters": (3, "major")})


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    with FakeOpenAI(TUTOR) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "sk-test", timeout_s=5, budget_s=20)
        options = GradeOptions(endpoint=endpoint, run_code=False,
                               cache_path=tmp / "llm.sqlite")
        return grade_recall(load_recall(RECALL), load_sources([FIXTURES / "grader" / "sources"]),
                            options)


def test_the_names_the_tutor_supplied_are_read_across_hard_wraps():
    assert supplied_names(load_recall(RECALL)) == ["feature map"]
    wrapped = recall_from_text(
        "# Notes\n\nSo, incremental PCA. You feed it mini-batches, I forgot the name of the\n"
        "method you call per batch => the name is partial_fit().\n\n"
        "Incremental PCA never needs the whole training set in memory at once.\n")
    assert supplied_names(wrapped) == ["partial_fit()"]


def test_a_major_gap_is_yellow_and_the_details_beside_it_are_listed_unmarked(report):
    conv = report.parts[0]
    assert conv.mark is Mark.YELLOW  # "major" in the model's answer, still a gap, not an error
    # one idea, two wordings: one point; the minor "stride" and the name the learner only
    # forgot ("feature map") are listed, not marked
    assert [o.point for o in conv.omissions] == ["zero padding (zeros are added around the input)"]
    assert [a.feedback for a in conv.assessments] == [
        "you left out zero padding (zeros are added around the input)."]
    assert [u for u in conv.unverified if u.startswith("also")] == [
        "also in the source (not marked): stride: stride is central to Chapter 14 — "
        "Convolutional neural networks › Convolutional layers › Padding and stride "
        "(cnn-notes.md § Convolutional layers › Padding and stride)",
        "also in the source (not marked): feature map: feature map is central to Chapter 14 — "
        "Convolutional neural networks › Convolutional layers "
        "(cnn-notes.md § Chapter 14 — Convolutional neural networks › Convolutional layers)"]


def test_beside_a_contradiction_the_gap_is_listed_not_marked(report):
    pooling = report.parts[1]
    assert pooling.mark is Mark.RED
    assert [a.mark for a in pooling.assessments] == [Mark.RED]
    assert pooling.omissions == ()
    assert [u.split(":")[1].strip() for u in pooling.unverified
            if u.startswith("also")] == ["memory use"]


def test_at_most_two_gaps_are_marked_the_rest_listed(report):
    training = report.parts[2]
    assert training.mark is Mark.YELLOW
    assert [o.point for o in training.omissions] == ["optimizer", "computes the loss"]
    assert [u.split(":")[1].strip() for u in training.unverified
            if u.startswith("also")] == ["number of parameters"]


def test_the_unmarked_points_are_notes_in_the_graded_file_and_make_no_card(report, tmp_path):
    graded = report.graded_markdown
    assert "=> also in the source (not marked): stride: stride is central to" in graded
    assert "=> also in the source (not marked): memory use: memory use is central to" in graded
    doc = parse_text(graded, "graded.md", kind="recall")
    assert [a.mark for p in doc.parts for a in p.assessments] == [
        Mark.YELLOW, Mark.RED, Mark.YELLOW]
    # notes, not answers: no assessment takes an "also in the source" line as its follow-up
    said = [f for p in doc.parts for a in p.assessments for f in (*a.followups, a.quote)]
    assert said and not any("also in the source" in f for f in said)
    path = tmp_path / "graded.md"
    path.write_text(graded)
    out = tmp_path / "deck.apkg"
    result = build([path], out, checks=None, now=1_000)
    col = Collection(str(tmp_path / "collection.anki2"))
    try:
        assert import_apkg(col, out).new == result.notes
        cards = rendered(col)
    finally:
        col.close()
    # a card per marked point (3) and the contradiction, and ankigen's own card for the
    # learner's "I forgot the name" cue; none for a point only listed
    text = " ".join(q + a for _, q, a in cards)
    assert result.notes == len(cards) == 5
    assert "zero padding" in text and "optimizer" in text and "computes the loss" in text
    assert "also in the source" not in text and "stride is central" not in text
