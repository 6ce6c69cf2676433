"""Parser tests: fixture files with their expected output beside them, plus the seeds' gaps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ankigen.model import GapKind, Mark
from ankigen.parse import parse_file, parse_text

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted([*(FIXTURES / "seeds").glob("*.md"), *(FIXTURES / "parse").glob("*.md"),
                *(FIXTURES / "vault").glob("*.md")])


def summary(path: Path) -> dict:
    doc = parse_file(path, path.name)
    return {
        "kind": doc.kind,
        "encoding": doc.encoding,
        "parts": [{"span": [p.span.start, p.span.end], "topic": p.topic, "chapter": p.chapter,
                   "assessments": [{"mark": a.mark.value, "line": a.line,
                                    "judged": [a.judged.start, a.judged.end],
                                    "feedback": a.feedback, "question": a.question,
                                    "inline": a.inline} for a in p.assessments]}
                  for p in doc.parts],
        "gaps": [{"kind": g.kind.value, "mark": g.mark.value if g.mark else None, "line": g.line,
                  "prompt": g.prompt, "answer": g.answer, "source": g.answer_source,
                  "term": g.term} for g in doc.gaps],
        "code": [{"lines": [c.span.start, c.span.end], "fenced": c.fenced, "lang": c.lang}
                 for c in doc.code_blocks],
        **({"bullets": [[b.line, b.depth, b.section, b.text] for b in doc.bullets]}
           if doc.bullets else {}),
    }


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_matches_expected(path: Path) -> None:
    expected_path = FIXTURES / "expected" / f"{path.parent.name}--{path.stem}.json"
    got = summary(path)
    if os.environ.get("UPDATE_FIXTURES") == "1":
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert expected_path.exists(), f"no expected output: run with UPDATE_FIXTURES=1 and review {expected_path}"
    assert got == json.loads(expected_path.read_text())


def _gaps(name: str):
    return parse_file(FIXTURES / "seeds" / name).gaps


def test_seed_ch9_10_gaps() -> None:
    gaps = _gaps("recall-ch9-10.md")
    hyper = [g for g in gaps if g.kind is GapKind.ASSESSMENT and g.mark is Mark.YELLOW]
    assert len(hyper) == 1 and "hyperparameter optimization" in hyper[0].prompt
    assert hyper[0].answer and hyper[0].answer.startswith("So, hyperparameter optimization.")
    param = next(g for g in gaps if g.kind is GapKind.FORGOT_NAME)
    assert param.term == "nn.Parameter" and "nn.Parameter" not in param.prompt
    to = next(g for g in gaps if g.kind is GapKind.INLINE_ANSWER)
    assert to.term == ".to()" and ".to()" not in to.prompt
    looked = next(g for g in gaps if g.kind is GapKind.LOOKED_UP)
    assert looked.term == "TensorDataset" and "TensorDataset" not in looked.prompt
    assert not any(g.mark is Mark.GREEN for g in gaps)


def test_seed_ch10_pytorch_gaps() -> None:
    gaps = _gaps("recall-ch10-pytorch.md")
    gpu = next(g for g in gaps if g.kind is GapKind.INLINE_MARK)
    assert gpu.mark is Mark.YELLOW and gpu.line == 21
    assert gpu.answer == "gpu speed and ram both matter."
    assert "gpu speed and ram" not in gpu.prompt
    nograd = next(g for g in gaps if g.kind is GapKind.ASSESSMENT)
    assert nograd.mark is Mark.YELLOW and "torch.no_grad()" in (nograd.answer or "")
    assert "no_grad" not in nograd.prompt  # the feedback is answer, not question
    quirk = next(g for g in gaps if g.kind is GapKind.SELF_QUESTION)
    assert "What's the other quirk?" in quirk.prompt
    assert quirk.answer and "in place operations" in quirk.answer
    assert "in place" not in quirk.prompt


def test_reference_note_is_not_a_recall() -> None:
    doc = parse_file(FIXTURES / "seeds" / "reference-fastai-lesson4.md")
    assert doc.kind == "reference" and not doc.gaps
    assert len(doc.code_blocks) == 10
    assert any("import torch.nn.function as F" in c.code for c in doc.code_blocks)
    assert {"Lesson 4", "Broadcasting", "Loss Function"} <= {s.title for s in doc.sections}


def test_repaired_text_reaches_the_card() -> None:
    doc = parse_file(FIXTURES / "parse" / "crlf-bom-mojibake.md")
    red = next(g for g in doc.gaps if g.mark is Mark.RED)
    assert red.answer == "Adam keeps two running averages — you mixed them up."
    assert [a.mark for a in doc.assessments] == [Mark.RED, Mark.YELLOW]


def test_part_break_under_text_and_indented_prose() -> None:
    doc = parse_file(FIXTURES / "parse" / "setext-and-indent.md")
    assert len(doc.parts) == 2  # `---` under text is a part break, not a setext heading
    assert not doc.code_blocks  # indented prose is not code
    assert [g.kind for g in doc.gaps] == [GapKind.ASSESSMENT]  # "What do we need?" is rhetorical


def test_unanswered_gap_says_so() -> None:
    doc = parse_text("# Notes\n\nSo, RNNs. The hidden state I don't remember at all.\n")
    (gap,) = doc.gaps
    assert gap.kind is GapKind.FORGOT and gap.unanswered and gap.answer_source is None


def test_include_green() -> None:
    text = "# Notes\n\nSo, tensors. They are arrays.\n\n🟢 => good recall.\n"
    assert parse_text(text).gaps == ()
    (gap,) = parse_text(text, include_green=True).gaps
    assert gap.mark is Mark.GREEN


def test_reference_note_bullets_sections_and_code() -> None:
    doc = parse_file(FIXTURES / "parse" / "reference-bullets.md")
    assert doc.kind == "reference" and not doc.gaps
    assert [(b.line, b.depth, b.section, b.text) for b in doc.bullets] == [
        (6, 0, "Momentum", "Momentum keeps a running average of past gradients."),
        (8, 1, "Momentum", "The average decays by beta each step."),
        (9, 0, "Momentum", "Nesterov looks ahead."),
        (11, 0, "Momentum", "SGD"),
        (12, 0, "Momentum", "Adam"),
    ]
    assert [(s.title, s.level, s.line) for s in doc.sections] == [
        ("Optimizers (reference)", 1, 1), ("Momentum", 2, 5)]
    (code,) = doc.code_blocks
    assert code.span.start == 17 and code.lang == "python"


def test_seed_reference_bullets() -> None:
    doc = parse_file(FIXTURES / "seeds" / "reference-fastai-lesson4.md")
    bullets = {b.line: b for b in doc.bullets}
    assert len(bullets) == 33
    assert bullets[22].text.startswith("**Matrix multiplication**, which is just multiplying")
    assert "**𝑚𝑎𝑥(𝑥, 0)**" in bullets[23].text  # the repaired text, not ð‘šð‘Žð‘¥
    assert bullets[121].text == "*Initialize* the weights." and bullets[121].section == \
        "Stochastic Gradient Descent (SGD)"


def test_parse_cli_shows_reference_outline() -> None:
    from click.testing import CliRunner

    from ankigen.cli import main

    r = CliRunner().invoke(main, ["parse", str(FIXTURES / "parse" / "reference-bullets.md")])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[1:7] == [
        "# Optimizers (reference) (line 1)",
        "## Momentum (line 5)",
        "  - line 6: Momentum keeps a running average of past gradients.",
        "    - line 8: The average decays by beta each step.",
        "  - line 9: Nesterov looks ahead.",
        "  - line 11: SGD",
    ]


def test_feedback_that_calls_a_named_thing_wrong_asks_about_the_sentence_that_says_it():
    # "Manhattan is wrong" / "you have C backwards" do not start with "wrong", yet say so:
    # the front quotes the learner's sentence the correction speaks to, not a generic one
    text = ("# Notes\n\nSo, distances. Euclidean distance is the square root of the sum of the "
            "squared differences. Manhattan distance is the square root of the sum of the "
            "absolute differences.\n\n🔴 => Manhattan is wrong.\n=> there is no square root: "
            "Manhattan distance is just the sum of the absolute differences.\n\n---\n\n"
            "So, SVMs. The hyperparameter C sets the trade-off: a large C gives a wider margin.\n\n"
            "🔴 => you have C backwards.\n> A large C punishes margin violations hard, so the "
            "margin gets narrower.\n")
    manhattan, c = parse_text(text).gaps
    assert manhattan.prompt == ("Distances — you wrote: “Manhattan distance is the square root "
                                "of the sum of the absolute differences.” What is wrong with it?")
    assert manhattan.answer == ("there is no square root: Manhattan distance is just the sum of "
                                "the absolute differences.")
    assert c.prompt == ("SVMs — you wrote: “The hyperparameter C sets the trade-off: a large C "
                        "gives a wider margin.” What is wrong with it?")


def test_a_tutor_who_defers_gives_no_answer_and_the_learner_is_asked_to_explain():
    text = ("# Notes\n\nSo, kNN. With many features kNN gets worse, something to do with how "
            "distances behave in high dimensions, but I can't explain it.\n\n"
            "🔴 => this needs a real explanation; come back to it after section 5.4.\n")
    (gap,) = parse_text(text).gaps
    assert gap.prompt == ("KNN — you wrote that with many features kNN gets worse, something to "
                          "do with how distances behave in high dimensions: why?")
    assert gap.unanswered and gap.answer is None


@pytest.mark.parametrize("remark, deferral", [
    ("this needs a real explanation; come back to it after section 5.4.", True),
    ("Look it up.", True),
    ("see the book, section 5.4, again", True),
    ("look it up, it's the Adam optimizer", False),
    ("revisit this, the gradient flows backwards through the graph", False),
    ("reread section 4: it is about X", False),
])
def test_a_pointer_is_no_answer_unless_it_goes_on_to_say_something(remark, deferral):
    from ankigen import phrases as ph
    assert ph.is_deferral(remark) is deferral
