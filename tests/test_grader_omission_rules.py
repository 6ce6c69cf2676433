"""Which omissions a part is marked for (grader/marks.py `sort_omissions`), over the real
client and the scripted loopback server: a gap is 🟡, never 🔴; beside a contradiction or a
major gap, naming what the tutor supplied after "I forgot the name", taught already by a
correction in another part (one citing the point's own section), or naming no term of the sources (a detail, grader/gaps.py), it
is listed as "also in the source (not marked)"; two points about one idea, or naming one
source term, are one; at most two marked; a gap marked in two parts is marked once; an API
name is said with the idea its words carry. The sources are tests/fixtures/grader/sources/cnn-notes.md with a few more
terms in bold (the training section's loss, gradient and optimizer)."""

from __future__ import annotations

from dataclasses import replace
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
from grader.gaps import mark_key
from grader.grade import GradeOptions, grade_recall
from grader.marks import sort_omissions
from grader.model import Claim, Judgement, Omission, Verdict
from grader.recall import load_recall, recall_from_text, supplied_names
from grader.retrieve import content_tokens
from grader.sources import load_sources

pytestmark = pytest.mark.timeout(60)
FIXTURES = Path(__file__).parent / "fixtures"
RECALL = FIXTURES / "grader-omission-rules" / "recall.md"
SOURCES = FIXTURES / "grader-omission-rules" / "sources"
TUTOR = Tutor(
    wrong={"learns its own weights": "Pooling layers have no trainable parameters"},
    omit={"feature map": (1, "major"), "zero padding": (1, "major"),
          "zeros are added around the input": (1, "minor"), "stride": (1, "minor"),
          "trainable parameters": (1, "major"),
          "memory use": (2, "major"),
          "optimizer": (3, "major"), "loss": (3, "major"),
          "number of parameters": (3, "major"), "gradient": (3, "major")})


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    with FakeOpenAI(TUTOR) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "sk-test", timeout_s=5, budget_s=20)
        options = GradeOptions(endpoint=endpoint, run_code=False,
                               cache_path=tmp / "llm.sqlite")
        return grade_recall(load_recall(RECALL), load_sources([SOURCES]),
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
    # forgot ("feature map") are listed, not marked; "trainable parameters", which the
    # pooling part's correction says of the pooling section, is this section's own term
    assert [o.point for o in conv.omissions] == [
        "zero padding (zeros are added around the input)", "trainable parameters"]
    assert [a.feedback for a in conv.assessments] == [
        "you left out zero padding (zeros are added around the input) and trainable "
        "parameters."]
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
    assert [o.point for o in training.omissions] == ["optimizer", "loss"]
    assert [a.feedback for a in training.assessments] == ["you left out optimizer and loss."]
    # "gradient" is a third; "number of parameters", major in the model's answer, names no
    # term of the sources (the pooling passage says it in passing): a detail, not a key gap
    assert [u.split(":")[1].strip() for u in training.unverified
            if u.startswith("also")] == ["number of parameters", "gradient"]


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
    # a card per marked point (4) and the contradiction, and ankigen's own card for the
    # learner's "I forgot the name" cue; none for a point only listed
    text = " ".join(q + a for _, q, a in cards)
    assert result.notes == len(cards) == 6
    assert "what is zero padding" in text and "what is optimizer?" in text and "what is loss?" in text
    assert "also in the source" not in text and "stride is central" not in text


def test_a_point_is_key_only_when_it_names_a_source_term_the_recall_never_mentions():
    sources = load_sources([SOURCES])
    said = load_recall(RECALL).learner_text
    passage = sources.passages[0]
    proposed = [Omission(0, "zero padding keeps the size", passage),  # a term, never said
                Omission(0, "how a kernel moves", passage),  # "kernel": the recall says it
                Omission(0, "converges more slowly", passage)]  # names no term at all
    assert [o.key for o in mark_key(proposed, sources, said)] == [True, False, False]
    # an API name counts by the idea its words carry: `torch.inference_mode()` is named by
    # "inference mode"; `torch.no_grad()` is said by the recall, so it is no new term
    autograd = load_sources([FIXTURES / "labelled" / "tensors-autograd" / "sources"])
    spoken = "We turn autograd off with torch.no_grad() when we only predict."
    apis = [Omission(0, "inference mode", passage), Omission(0, "no_grad context", passage)]
    assert [o.key for o in mark_key(apis, autograd, spoken)] == [True, False]
    # sources that name nothing (no bold, no code terms): nothing could be named, all key
    plain = load_sources([FIXTURES / "grader" / "sources" / "history.txt"])
    assert [o.key for o in mark_key(proposed, plain, said)] == [True, True, True]


def test_a_point_naming_a_supplied_name_in_other_words_is_not_left_out():
    passage = load_sources([SOURCES]).passages[0]
    point = Omission(0, "nonparametric vs parametric models", passage)
    # "nonparametric model" is in the point, though not as one phrase
    assert sort_omissions([point], [], ["nonparametric model"]) == ([], [point])
    assert sort_omissions([point], [], ["feature map"]) == ([point], [])


def test_a_point_is_taught_by_a_correction_in_another_part_only_from_its_own_section():
    """The model's correction of one part teaches the idea it cites; a word of it in passing
    teaches nothing elsewhere (validation logistic-regression: part 6's correction says "the
    raw logits" of nn.BCEWithLogitsLoss; part 1 still left out the logit, the log-odds)."""
    passages = load_sources([SOURCES]).passages
    pooling, training = passages[3], passages[4]
    claim = Claim("c9", 2, 30, "Max pooling learns its own weights.")
    point = Omission(0, "trainable parameters", pooling, "major")
    for cited, taught in ((pooling, True), (training, False)):
        wrong = Judgement(claim, Verdict.CONTRADICTED, cited, 1.0,
                          correction="Pooling layers have no trainable parameters.")
        assert sort_omissions([point], [wrong], []) == (([], [point]) if taught
                                                        else ([point], []))


def test_beside_failing_code_or_a_wrong_name_the_gap_is_listed_not_marked():
    """The error is the lesson, as beside a contradiction: a tutor marks the part 🔴 and names
    no gap there (the validation split's autoencoders 6: `torch.normal_like` beside VAEs)."""
    passage = load_sources([SOURCES]).passages[0]
    point = Omission(0, "latent loss", passage)
    assert sort_omissions([point], [], [], failed=[0]) == ([], [point])
    assert sort_omissions([point], [], [], failed=[1]) == ([point], [])


AUTOGRAD = FIXTURES / "labelled" / "tensors-autograd" / "sources"
NO_GRAD = ("# Notes\n\nSo, turning autograd off. Inside a with torch.no_grad(): block no graph is "
           "recorded, and you use it for evaluation and for manual parameter updates.\n")


def grade_with(tutor: Tutor, text: str, sources: Path, tmp: Path):
    with FakeOpenAI(tutor) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "sk-test", timeout_s=5, budget_s=20)
        options = GradeOptions(endpoint=endpoint, run_code=False, cache_path=tmp / "llm.sqlite")
        return grade_recall(recall_from_text(text, "recall.md"), load_sources([sources]),
                            options)


def test_an_api_name_is_said_with_the_idea_its_words_carry(tmp_path):
    # the real model named the tutor's `torch.inference_mode()` bare; its words carry an
    # idea, so the point is kept the way offline says it; `torch.float32`'s carry none
    tutor = Tutor(omit={"torch.inference_mode()": (1, "minor"), "torch.float32": (1, "minor")})
    report = grade_with(tutor, NO_GRAD, AUTOGRAD, tmp_path)
    part = report.parts[0]
    assert part.mark is Mark.YELLOW
    assert [o.point for o in part.omissions] == ["inference mode (`torch.inference_mode()`)"]
    assert [a.feedback for a in part.assessments] == [
        "you left out inference mode (`torch.inference_mode()`)."]
    assert not any("float32" in u for u in part.unverified)
    # a recall that says the idea in words has not left it out, though it never names the API
    said = ("# Notes\n\nSo, turning autograd off. Inside a no-grad block no graph is "
            "recorded; for predictions alone inference mode skips even more.\n")
    again = grade_with(tutor, said, AUTOGRAD, tmp_path / "said")
    assert again.parts[0].omissions == ()
    assert not [u for u in again.parts[0].unverified if "inference" in u]  # not even listed


def test_a_gap_marked_in_two_parts_is_marked_once_where_it_is_major():
    # the real model's attention answer: "cross-attention" for the part on attention scores
    # (a tutor 🟢), and, major, for the decoder block, where the tutor names it
    sources = load_sources([FIXTURES / "labelled" / "attention" / "sources"])
    said = ("Attention scores are a softmax of the queries times the keys. "
            "A mask stops a position from attending to later positions.")
    passage = sources.passages[0]
    scores, masks, decoder, later = mark_key([
        Omission(1, "cross-attention", passage, "minor"),
        Omission(3, "padding mask", passage, "minor"),
        Omission(5, "cross-attention in the decoder block", passage, "major"),
        Omission(5, "cross-attention in the decoder block", passage, "minor")], sources, said)
    assert scores.terms == decoder.terms == ("cross-attention",)
    assert sort_omissions([scores, masks, decoder], [], []) == ([masks, decoder], [scores])
    # of equal weight, the first part keeps it
    assert sort_omissions([scores, later], [], []) == ([scores], [later])
    # words in common are not enough across parts: "mask" is no source term of its own here
    mask = Omission(2, "mask", passage, "minor", terms=())
    assert sort_omissions([mask, masks], [], []) == ([mask, masks], [])


def test_two_points_naming_one_source_term_are_one_gap():
    # the real model's regularization answer: both points name the AdamW the recall never
    # mentions, with no word in common; a tutor names it once
    sources = load_sources([FIXTURES / "labelled" / "regularization" / "sources"])
    said = "With plain SGD, L2 regularization and weight decay are the same thing."
    passage = sources.passages[0]
    proposed = [Omission(0, "AdamW", passage, "major"),
                Omission(0, "L2 is not weight decay with Adam", passage, "major")]
    keyed = mark_key(proposed, sources, said)
    assert [o.terms for o in keyed] == [("AdamW",), ("AdamW",)]
    one = replace(keyed[0], point="AdamW (L2 is not weight decay with Adam)")
    assert sort_omissions(keyed, [], []) == ([one], [])
    # in two parts, the first keeps it
    apart = [keyed[0], replace(keyed[1], part=3)]
    assert sort_omissions(apart, [], []) == ([apart[0]], [apart[1]])


def test_a_minor_pointone_more_item_of_a_list_the_part_went_through_is_a_detail():
    """Validation clustering 6 names agglomerative clustering, HDBSCAN and Gaussian mixtures
    from "Other clustering algorithms"; the model's minor "Mean-shift and spectral clustering",
    the list's last item, is a detail a tutor does not mark (they gave 🟢)."""
    from grader.judge import one_more_item

    sources = load_sources([FIXTURES / "labelled-validation" / "clustering" / "sources"])
    last = next(p for p in sources.passages if p.text.startswith("**Mean-shift**"))
    went = content_tokens("Other algorithms: agglomerative clustering that merges the closest "
                          "clusters, HDBSCAN for varying densities, and Gaussian mixtures.")
    assert one_more_item(last, sources, went)
    # one item short of the list, or a point of prose, is no list gone through
    assert not one_more_item(last, sources, content_tokens(
        "Other algorithms: agglomerative clustering and HDBSCAN for varying densities."))
    prose = next(p for p in sources.passages if p.kind == "prose")
    assert not one_more_item(prose, sources, went)


VALIDATION_2 = FIXTURES / "labelled-validation-2"
VALUE_ITERATION = ("# Notes\n\nSo, value iteration. You start with every value at 0 and keep "
                   "applying the Bellman equation as an update to all the states, and the "
                   "values converge to the optimal ones. Q-values are the same idea for a "
                   "state and an action.\n")


def test_a_one_letter_prefix_is_part_of_its_word(tmp_path):
    """Validation-2 q-learning 3: the learner recalls value iteration and writes "Q-values"
    elsewhere; the tutor says "you didn't mention Q-value iteration". Tokens drop one-letter
    words, so "Q-value iteration" read as "value iteration", said, and the model's point was
    dropped as mentioned."""
    from grader.gaps import lettered

    assert lettered("Q-value iteration, t-SNE, K-Means++ and a well-known x") == \
        "Qvalue iteration, tSNE, KMeans++ and a well-known x"
    sources = VALIDATION_2 / "q-learning" / "sources"
    tutor = Tutor(omit={"Q-value iteration": (1, "minor")})
    part = grade_with(tutor, VALUE_ITERATION, sources, tmp_path).parts[0]
    assert [o.point for o in part.omissions] == ["Q-value iteration"]
    assert [a.feedback for a in part.assessments] == ["you left out Q-value iteration."]
    # a recall that writes it has not left it out
    said = VALUE_ITERATION.replace("Q-values are", "Q-value iteration is")
    again = grade_with(tutor, said, sources, tmp_path / "said").parts[0]
    assert again.omissions == () and not [u for u in again.unverified if "Q-value" in u]


LOSS_SCALING = ("So, loss scaling. You multiply the loss by a big number before backward(), "
                "and scaler.step(optimizer) unscales the gradients and skips the step if it "
                "finds an inf.")


def test_an_api_call_the_notes_write_as_code_is_a_term_the_point_names_as_code():
    """Validation-2: the tutor's "you left out fake.detach()", "scaler.unscale_(optimizer)",
    "checkpoint_sequential" are calls the notes write as inline code (one with its
    arguments), whose words carry no idea or are no key point; the model proposed each,
    written as code, and each was listed as naming no term."""
    sources = load_sources([VALIDATION_2 / "mixed-precision" / "sources"])
    passage = sources.passages[0]
    unscale, words, stack, value = mark_key([
        Omission(0, "unscale_ before gradient clipping", passage, "major"),
        Omission(0, "unscale the gradients before clipping", passage, "major"),
        Omission(0, "checkpoint sequential (`checkpoint_sequential`)", passage),
        Omission(0, "`segments` chunks of the stack", passage)], sources, LOSS_SCALING)
    # "unscales" is the word, not the call; the point says the call as the notes write it
    assert (unscale.key, unscale.terms) == (True, ("scaler.unscale_(optimizer)",))
    assert unscale.point == "unscale_ before gradient clipping (`scaler.unscale_(optimizer)`)"
    # the plain word names no call; a value in backticks is no API
    assert (words.key, words.point) == (False, "unscale the gradients before clipping")
    assert (stack.key, stack.terms) == (True, ("torch.utils.checkpoint.checkpoint_sequential",))
    assert stack.point == "checkpoint sequential (`checkpoint_sequential`)"
    assert (value.key, value.terms) == (False, ())
    # a recall that writes the call has not left it out
    wrote = LOSS_SCALING + " Before clipping, scaler.unscale_(optimizer)."
    assert not mark_key([unscale], sources, wrote)[0].key
    gans = load_sources([VALIDATION_2 / "gans" / "sources"])
    detach = Omission(1, "fake.detach() in the discriminator phase", gans.passages[0])
    phases = "First the discriminator on real and fake samples, then the generator."
    assert mark_key([detach], gans, phases)[0].terms == ("fake.detach()",)
    assert not mark_key([detach], gans, phases + " You detach the fakes first.")[0].key
