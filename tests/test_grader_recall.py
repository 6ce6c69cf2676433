"""The recall as the grader reads it: the learner's own words, in whole sentences."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ankigen import phrases as ph
from ankigen.parse import parse_text
from grader.coverage import mentioned
from grader.grade import GradeOptions, grade_recall
from grader.recall import (
    learner_lines,
    load_recall,
    paragraphs,
    recall_from_text,
    sentence_claims,
    supplied_names,
)
from grader.retrieve import content_tokens
from grader.sources import load_sources

LABELLED = Path(__file__).parent / "fixtures" / "labelled"
WRAP_AT = 85


def hard_wrapped(text: str, width: int = WRAP_AT) -> str:
    """`text` as an editor that wraps at `width` columns would save it: every long prose
    line filled to the width; headings, marks, quotes, code and list markers left alone."""
    out: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        prose = not fenced and line[:1].isalpha() and "=>" not in line
        out += textwrap.wrap(line, width, break_on_hyphens=False) if prose and len(line) > width \
            else [line]
    return "\n".join(out)


@pytest.mark.parametrize("session", ["cnn", "attention", "tensors-autograd"])
def test_a_hard_wrapped_recall_gives_the_same_claims_as_its_unwrapped_copy(session):
    original = load_recall(LABELLED / session / "recall.md")
    wrapped_text = hard_wrapped(original.text)
    assert wrapped_text.count("\n") > original.text.count("\n") + 10  # it really is wrapped
    wrapped = recall_from_text(wrapped_text, "wrapped.md")
    want = [(c.part, c.text) for c in sentence_claims(original)]
    assert [(c.part, c.text) for c in sentence_claims(wrapped)] == want
    assert len(want) >= 20
    # and the model reads the same paragraphs
    for part in range(len(original.doc.parts)):
        assert [t for _, t in paragraphs(wrapped, part)] == [t for _, t in paragraphs(original, part)]


def test_the_shared_splitter_joins_hard_wraps_and_nothing_else():
    flowing = ("The kernel slides over the input and at each position computes a weighted sum "
               "of the patch plus a bias. Padding adds a border of zeros around the input so "
               "the output keeps its size.")
    assert ph.sentences(textwrap.fill(flowing, 80)) == ph.sentences(flowing) == [
        "The kernel slides over the input and at each position computes a weighted sum of the "
        "patch plus a bias.",
        "Padding adds a border of zeros around the input so the output keeps its size."]
    # short lines, list items, marks and arrows stay lines of their own
    assert ph.sentences("short line\nNext one") == ["short line", "Next one"]
    long = "a line long enough to be a hard wrap if it went on"
    assert ph.sentences(f"{long}\n- an item") == [long, "- an item"]
    assert ph.sentences(f"{long}\n🟡 => missing") == [long, "🟡 => missing"]
    assert ph.sentences(f"{long}\n=> the answer") == [long, "=> the answer"]
    assert ph.first_sentence(textwrap.fill(flowing, 80)) == ph.sentences(flowing)[0]


TUTORED = """# Notes

So, GoogLeNet. It runs 1x1, 3x3 and 5x5 convolutions in parallel and concatenates them.
The 1x1 convs cut the channels first, I forgot the name of that kind of layer => the name is bottleneck layer

=> bottleneck layers keep the expensive kernels cheap.
> The 1 x 1 convolutions act as **bottleneck layers**: they reduce the number of channels.

ResNet adds the block's input to its output through skip connections, I forgot the name, it's called a residual block.
"""


def test_tutor_lines_are_set_aside_never_claims_never_credited(tmp_path):
    recall = recall_from_text(TUTORED, "tutored.md")
    assert recall.set_aside == 4
    learner = recall.learner_text
    for tutor_words in ("bottleneck", "expensive kernels cheap", "reduce the number",
                        "residual block"):
        assert tutor_words not in learner
    assert "The 1x1 convs cut the channels first, I forgot the name of that kind of layer" in learner
    claims = [c.text for c in sentence_claims(recall)]
    # what the learner said before a forgot-the-name cue is theirs: a claim; the cue and the
    # name the tutor gave are not
    assert claims == ["It runs 1x1, 3x3 and 5x5 convolutions in parallel and concatenates them.",
                      "The 1x1 convs cut the channels first",
                      "ResNet adds the block's input to its output through skip connections"]
    assert recall.text.count("bottleneck") == 3  # graded.md keeps every line as written
    sources = load_sources([LABELLED / "cnn" / "sources"])
    report = grade_recall(recall, sources, GradeOptions(run_code=False))
    assert report.set_aside == 4
    assert ("tutored.md: set aside 4 line(s) the tutor supplied (`=>` answers, `>` quotes, a "
            "name given after “I forgot the name”): not the learner's recall, so never claims "
            "and never credited") in report.warnings
    # the tutor said it, the learner did not: still an omission candidate
    assert not mentioned("bottleneck layers", content_tokens(recall.learner_text))
    assert mentioned("bottleneck layers", content_tokens(recall.text))


def test_learner_lines_keep_line_numbers_and_code():
    text = "# Notes\n\nSo, x. A tensor has a shape => yes\n\n```python\nf = lambda a: a  # => 1\n```\n"
    recall = recall_from_text(text)
    lines, n = learner_lines(recall.text, recall.doc)
    assert n == 1 and len(lines) == len(recall.lines)
    assert lines[2] == "So, x. A tensor has a shape" and lines[5] == "f = lambda a: a  # => 1"


def test_a_wrapped_supplied_name_is_set_aside_up_to_its_clause_end():
    # a hard wrap leaves the tutor's "=> the name is" at one line's end and the name at the
    # next one's start; the learner's sentence goes on after the comma
    text = ("# Notes\n\nSo, embeddings. In PyTorch you load them with, I forgot the name of the\n"
            "method => the name is\nnn.Embedding.from_pretrained, and freeze=True keeps them\n"
            "fixed, or freeze=False to fine-tune them.\n\nNext paragraph => fine\nstays mine.\n")
    recall = recall_from_text(text)
    lines, n = learner_lines(recall.text, recall.doc)
    assert lines[3] == "method"
    assert lines[4] == "and freeze=True keeps them"
    assert lines[5] == "fixed, or freeze=False to fine-tune them."
    assert lines[8] == "stays mine."  # "=> fine" is a finished remark: nothing runs on
    assert n == 3
    assert "from_pretrained" not in recall.learner_text


def test_the_learner_writes_on_after_a_supplied_name():
    # the tutor inserts the name; the learner's sentences after it on the line are recall
    text = ("# Notes\n\nSo, SGD. People lower the learning rate as training goes on, I forgot the "
            "name of the function that does that => the name is learning schedule. One pass of m "
            "iterations is an epoch.\n\nSo, BN. I forgot the name of the scale one => the name is "
            "gamma, and the shift is beta.\n\nSo, p. I forgot the name => the name is "
            "nn.Parameter => Good name!\n")
    recall = recall_from_text(text)
    lines, n = learner_lines(recall.text, recall.doc)
    assert lines[2] == ("So, SGD. People lower the learning rate as training goes on, I forgot "
                        "the name of the function that does that. One pass of m iterations is an "
                        "epoch.")
    assert lines[4] == "So, BN. I forgot the name of the scale one and the shift is beta."
    assert lines[6] == "So, p. I forgot the name"
    assert n == 3
    assert supplied_names(recall) == ["learning schedule", "gamma", "nn.Parameter"]


def test_a_verdict_after_a_supplied_name_is_the_tutors():
    # "=> the name is X. Good, but …": the tutor goes on judging; nothing after it is recall
    text = ("# Notes\n\nSo, pooling. I forgot the name of the layer => the name is max pooling. "
            "Good, but you left out stride.\n\nSo, SGD. I forgot the name => the name is "
            "momentum. Not quite: it is the velocity.\n\nSo, BN. I forgot the name => the name "
            "is gamma. Gamma scales each feature.\n")
    recall = recall_from_text(text)
    lines, n = learner_lines(recall.text, recall.doc)
    assert lines[2] == "So, pooling. I forgot the name of the layer"
    assert lines[4] == "So, SGD. I forgot the name"
    assert lines[6] == "So, BN. I forgot the name. Gamma scales each feature."
    assert "stride" not in recall.learner_text and "velocity" not in recall.learner_text
    assert n == 3


def test_a_name_that_ends_its_line_does_not_eat_the_next_sentence():
    # no punctuation after the name at the line's end: the next line may still be the
    # learner's own sentence, which is longer than what a name leaves for the next line
    text = ("# Notes\n\nSo, BN. The scale parameter, I forgot the name => the name is gamma\n"
            "The shift parameter is beta, and both are learned per channel.\n\n"
            "So, RNNs. The gate that forgets, I forgot the name => the name is forget\n"
            "gate, and it is a sigmoid.\n")
    lines, _ = learner_lines(text, parse_text(text, kind="recall"))
    assert lines[3] == "The shift parameter is beta, and both are learned per channel."
    assert lines[6] == "and it is a sigmoid."
    # the name opens the next line (the lead ended this one): never the learner's, however
    # long the run before a clause ends
    text = ("# Notes\n\nSo, embeddings. I load them with a method, I forgot the name => the name is\n"
            "nn.Embedding.from_pretrained and freeze=True keeps them fixed\n")
    lines, _ = learner_lines(text, parse_text(text, kind="recall"))
    assert "from_pretrained" not in " ".join(lines)
