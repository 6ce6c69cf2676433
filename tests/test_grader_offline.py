"""The grader offline: coverage, omissions and code runs, no 🟢 unless asked (and then only where
one passage backs each statement); graded.md makes cards."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered

from ankigen.build import build
from ankigen.model import GapKind, Mark
from ankigen.parse import parse_text
from grader.code import SharedRunner
from grader.grade import GradeOptions, grade_recall
from grader.model import Verdict
from grader.recall import load_recall, recall_from_text
from grader.sources import load_sources

FIXTURES = Path(__file__).parent / "fixtures" / "grader"
OFFLINE = GradeOptions()


@pytest.fixture(scope="module")
def runner():
    pytest.importorskip("torch")
    with SharedRunner(timeout_s=10.0) as shared:
        yield shared


@pytest.fixture(scope="module")
def report(runner):
    recall = load_recall(FIXTURES / "recall.md")
    sources = load_sources([FIXTURES / "sources"])
    return grade_recall(recall, sources, OFFLINE, runner)


def test_offline_marks_omissions_and_failing_code_and_no_green_it_cannot_back(report):
    assert report.mode == "offline" and report.model is None
    assert report.marks == (Mark.YELLOW, None, Mark.RED)
    conv, pooling, training = report.parts
    assert [o.point for o in conv.omissions] == ["zero padding", "stride"]
    # Offline cannot tell that "max pooling learns its own weights" is wrong: it says
    # nothing rather than guess, and calls the off-source anecdote unverified.
    assert pooling.mark is None and not pooling.assessments
    verdicts = {j.claim.text: j.verdict for j in pooling.judgements}
    assert verdicts["Fun fact: Yann LeCun trained his first network on bank cheques from Canada."] \
        is Verdict.NOT_IN_SOURCE
    assert Verdict.SUPPORTED not in {j.verdict for p in report.parts for j in p.judgements}
    (run,) = training.code
    assert run.status == "error"
    assert run.detail == "AttributeError: 'Tensor' object has no attribute 'backwards'"


def test_graded_markdown_keeps_the_recall_verbatim_and_adds_assessments(report):
    original = (FIXTURES / "recall.md").read_text().split("\n")
    graded = report.graded_markdown.split("\n")
    # Only lines were added: the recall reads in order, unchanged, inside the graded file.
    it = iter(graded)
    assert all(any(line == g for g in it) for line in original)
    added = [g for g in graded if g not in original]
    assert added[0] == "🟡 => you left out zero padding and stride."
    # The graded format (docs/cards.md): one `=>` line and one `>` quote per point.
    at = graded.index(added[0])
    assert graded[at + 1 : at + 4] == ["", "=> zero padding.", "> With **zero padding** (\"same\" "
                                       "padding), zeros are added around the input so the output "
                                       "keeps its height and width."]
    assert "=> stride." in added
    assert "🔴 => `loss.backwards()` fails when run: AttributeError: 'Tensor' object has no " \
        "attribute 'backwards'" in added
    assert "> `loss.backward()`" in added  # the sources' own line is the answer
    assert "=> unverified: “Fun fact: Yann LeCun trained his first network on bank cheques " \
        "from Canada.” is not in the sources." in added


def test_graded_markdown_parses_into_the_gaps_it_means(report):
    doc = parse_text(report.graded_markdown, "graded.md")
    assert [(p.index, [a.mark for a in p.assessments]) for p in doc.parts] == [
        (0, [Mark.YELLOW]), (1, []), (2, [Mark.RED])]
    padding, stride, code = doc.gaps
    assert padding.prompt == "Convolutional neural networks — what is zero padding?"
    assert padding.answer_source == "quote" and "zeros are added around the input" in padding.answer
    assert "distance between two consecutive positions" not in padding.answer
    assert stride.prompt == "Convolutional neural networks — what is stride?"
    assert "distance between two consecutive positions" in stride.answer
    assert padding.anchor != stride.anchor  # each point is a note of its own
    assert code.kind is GapKind.WRONG_CODE and code.code == "loss.backwards()"
    assert code.answer.startswith("`loss.backward()`")
    # The unverified note is neither an answer nor a gap of its own.
    assert all("unverified" not in (g.answer or "") + g.prompt for g in doc.gaps)


def test_ankigen_builds_the_graded_session_into_cards_anki_imports(report, tmp_path):
    graded = tmp_path / "graded.md"
    graded.write_text(report.graded_markdown)
    out = tmp_path / "out" / "weak-spots.apkg"
    result = build([graded], out, checks=None, now=1_000)
    assert result.notes == 3  # one card per omitted point, one for the failing code
    col = Collection(str(tmp_path / "collection.anki2"))
    try:
        assert (import_apkg(col, out).new, col.note_count()) == (3, 3)
        cards = {html.unescape(q): html.unescape(a) for _, q, a in rendered(col)}
        front = next(q for q in cards if "what is zero padding?" in q)
        assert "zeros are added around the input" not in front  # the front never answers
        assert "zeros are added around the input" in cards[front]
        stride = next(q for q in cards if "what is stride?" in q)
        assert "distance between two consecutive positions" in cards[stride]
        code_front = next(q for q in cards if "what is wrong with this line" in q)
        assert "backwards" in code_front  # the learner's line, highlighted
        assert "<code>loss.backward()</code>" in cards[code_front]  # the sources' line
        # Grading again and rebuilding gives the same notes: a re-import adds nothing.
        again = grade_recall(load_recall(FIXTURES / "recall.md"),
                             load_sources([FIXTURES / "sources"]), GradeOptions(run_code=False))
        assert again.parts[0].assessments == report.parts[0].assessments
        log = import_apkg(col, out)
        assert (log.new, log.updated, col.note_count()) == (0, 0, 3)
    finally:
        col.close()


def test_a_tutor_marked_session_is_graded_without_its_marks(tmp_path):
    marked = (FIXTURES / "recall.md").read_text().replace(
        "Pooling also reduces computation and memory use.\n",
        "Pooling also reduces computation and memory use.\n\n"
        "🔴 => max pooling has no weights.\n=> it takes the max of each window.\n"
        "> Pooling layers have no trainable parameters.\n\n")
    recall = recall_from_text(marked, "marked.md")
    assert recall.stripped == 3
    assert recall.text == (FIXTURES / "recall.md").read_text()
    assert not parse_text(recall.text, kind="recall").assessments


def test_inline_tutor_remarks_are_cut_and_learner_marks_lose_only_the_emoji():
    text = ("# Notes\n\nGPU memory is limited. 🟡 => speed and memory both matter.\n\n"
            "GoogLeNet had inception modules, 🟡 (forgot the rest) and ResNet had skips.\n")
    recall = recall_from_text(text)
    assert recall.text == ("# Notes\n\nGPU memory is limited.\n\n"
                           "GoogLeNet had inception modules, (forgot the rest) and ResNet had skips.\n")


def test_offline_never_marks_green_by_default_on_the_labelled_sessions(runner):
    from grader.evaluate import evaluate

    result = evaluate(Path(__file__).parent / "fixtures" / "labelled", OFFLINE, runner)
    assert len(result.sessions) == 9 and len(result.pairs) == 54
    assert all(m is not Mark.GREEN for s in result.sessions for m in s.grader)
    assert result.false_accept == 0.0


def test_offline_green_when_asked_goes_to_tutor_green_parts_of_the_tuning_split(runner):
    """Asked for (GradeOptions.offline_green), offline 🟢 needs one passage sentence stating
    each statement: on the tuning split it goes to 5 parts, each one the tutor marked 🟢
    (docs/grader.md measures it on every split, and says why it is off by default)."""
    from grader.evaluate import evaluate

    result = evaluate(Path(__file__).parent / "fixtures" / "labelled",
                      GradeOptions(offline_green=True), runner)
    assert len(result.sessions) == 9 and len(result.pairs) == 54
    greens = [(s.name, i + 1) for s in result.sessions for i, m in enumerate(s.grader)
              if m is Mark.GREEN]
    assert greens == [("attention", 1), ("cnn", 6), ("optimizers", 6), ("regularization", 2),
                      ("regularization", 6)]
    assert all(t is Mark.GREEN for t, g in result.pairs if g is Mark.GREEN)
    assert result.false_accept == 0.0


def test_a_recall_with_no_notes_heading_and_no_marks_is_still_graded(tmp_path):
    raw = tmp_path / "raw.md"
    raw.write_text("A convolutional layer slides a kernel over the image to make a feature map.\n"
                   "\n---\n\nMax pooling keeps the largest value of each window.\n")
    report = grade_recall(load_recall(raw), load_sources([FIXTURES / "sources"]),
                          GradeOptions(run_code=False))
    assert len(report.parts) == 2


def test_the_recall_is_read_and_repaired_like_any_notes_file(tmp_path):
    broken = tmp_path / "recall.md"
    text = (FIXTURES / "recall.md").read_text()
    broken.write_bytes(text.replace("far fewer parameters", "far fewer parameters â€” the trick")
                       .replace("\n", "\r\n").encode("utf-8"))
    recall = load_recall(broken)
    assert "far fewer parameters — the trick" in recall.text and "\r" not in recall.text


def test_code_that_hangs_is_unverified_never_a_red_mark():
    pytest.importorskip("torch")
    text = ("# Notes\n\nSo, loops. A training loop must end when the epochs run out.\n\n"
            "```python\nwhile True:\n    pass\n```\n")
    with SharedRunner(timeout_s=1.0) as quick:
        report = grade_recall(recall_from_text(text), load_sources([FIXTURES / "sources"]),
                              OFFLINE, quick)
    (part,) = report.parts
    (run,) = part.code
    assert (run.status, run.detail) == ("timeout", "block 1 ran past its 1 s limit and was stopped")
    assert Mark.RED not in [a.mark for a in part.assessments]
    assert "the code starting “while True:” did not finish in time: block 1 ran past its " \
        "1 s limit and was stopped" in part.unverified


def test_pseudo_code_is_not_run_and_not_held_against_the_part():
    text = ("# Notes\n\nSo, the training loop. Each epoch predicts, computes the loss and steps.\n\n"
            "for epoch in range(n):\n    (predict, then compute the loss*)\n    step the optimizer\n")
    report = grade_recall(recall_from_text(text), load_sources([FIXTURES / "sources"]),
                          OFFLINE, lambda: pytest.fail("pseudo-code must not start a runner"))
    (part,) = report.parts
    (run,) = part.code
    assert (run.status, run.detail, run.fenced) == ("not_python", "pseudo-code, not valid Python",
                                                    False)
    assert not any("code" in u for u in part.unverified)


def test_an_untagged_fence_runs_only_when_it_is_a_program_as_cards_decide():
    """The grader runs the blocks ankigen's cards would run (python_code.is_python): an
    untagged fence of sample output or shell is left alone, never run and never a mark."""
    text = ("# Notes\n\nSo, tensors. Printing one shows its values.\n\n"
            "```\ntensor([1., 2.])\n```\n\n```\npip install torch\n```\n")
    report = grade_recall(recall_from_text(text), load_sources([FIXTURES / "sources"]),
                          OFFLINE, lambda: pytest.fail("sample output must not start a runner"))
    (part,) = report.parts
    assert [(r.status, r.detail) for r in part.code] == [
        ("not_python", "not run: no import, call, loop or definition, so not taken for a "
                       "program"),
        ("not_python", "pseudo-code, not valid Python")]
    assert not part.assessments


def test_failing_code_names_the_statement_the_runner_saw_fail(runner):
    text = ("# Notes\n\nSo, shapes. A linear layer needs as many input features as it was built "
            "for.\n\n```python\nimport torch\n\nlayer = torch.nn.Linear(4, 2)\n"
            "out = layer(torch.ones(3, 5))\nprint(out.shape)\n```\n")
    report = grade_recall(recall_from_text(text), load_sources([FIXTURES / "sources"]),
                          OFFLINE, runner)
    (run,) = report.parts[0].code
    assert run.status == "error" and run.line == 9
    red = next(a for a in report.parts[0].assessments if a.mark is Mark.RED)
    assert red.feedback == ("`out = layer(torch.ones(3, 5))` fails when run: RuntimeError: mat1 "
                            "and mat2 shapes cannot be multiplied (3x5 and 4x2)")


def test_round_trip_one_card_per_omission(report, tmp_path):
    """grade → build → one card per omitted point, each asking for that point and answered
    by that point's quote (the graded format in docs/cards.md is the contract between grader
    and ankigen)."""
    points = [o.point for p in report.parts for o in p.omissions]
    assert len(points) >= 2
    graded = tmp_path / "graded.md"
    graded.write_text(report.graded_markdown)
    gaps = [g for g in parse_text(report.graded_markdown, "graded.md").gaps
            if g.kind is GapKind.ASSESSMENT]
    assert len(gaps) == len(points)
    for point, gap in zip(points, gaps, strict=True):
        assert point in gap.prompt  # the front asks for this point …
        assert all(p not in gap.prompt for p in points if p != point)  # … and no other
        assert gap.answer_source == "quote" and point.split()[-1] in gap.answer.lower()
    out = tmp_path / "deck.apkg"
    result = build([graded], out, checks=None, now=1_000)
    col = Collection(str(tmp_path / "collection.anki2"))
    try:
        assert import_apkg(col, out).new == result.notes == len(points) + 1  # + the code card
        fronts = [html.unescape(q) for _, q, _ in rendered(col)]
        assert all(sum(point in q for q in fronts) == 1 for point in points)
    finally:
        col.close()
