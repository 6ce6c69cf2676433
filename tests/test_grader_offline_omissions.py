"""Offline omissions (issue 14 item 2): which key points a part is told it left out.

Each case is a short recall written for the test, graded offline against a labelled
session's sources, with its counter-case: the same recall saying the point.
"""

from __future__ import annotations

from pathlib import Path

from grader.grade import GradeOptions, grade_recall
from grader.model import Report
from grader.recall import recall_from_text
from grader.sources import load_sources

LABELLED = Path(__file__).parent / "fixtures" / "labelled"
NO_CODE = GradeOptions(run_code=False)


def _grade(session: str, notes: str) -> Report:
    return grade_recall(recall_from_text(f"# Notes\n\n{notes}\n"),
                        load_sources([LABELLED / session / "sources"]), NO_CODE)


BLOCK = ("So, the transformer block. The encoder block is multi-head self-attention and then a "
         "position-wise feed-forward network. Each sublayer has a residual connection and then "
         "layer normalization.\n\n")


def test_a_concept_dropped_from_a_sentence_the_learner_recalled_is_left_out_there():
    """The source's decoder sentence uses **cross-attention** (defined in another section);
    the learner recalls that sentence without it: the part is told, with that sentence."""
    report = _grade("attention", BLOCK + "The decoder block is masked self-attention followed "
                                         "by the same feed-forward network.")
    (part,) = report.parts
    assert [o.point for o in part.omissions] == ["cross-attention"]
    (left_out,) = part.assessments
    assert left_out.feedback == "you left out cross-attention."
    assert left_out.points == (("cross-attention.",
                                "A decoder block has three sublayers: masked (causal) "
                                "self-attention, then cross-attention whose queries come from "
                                "the decoder and whose keys and values come from the encoder's "
                                "output, then the feed-forward network.\n— "
                                "attention-transformers.md § Attention and transformers › The "
                                "transformer block"),)
    # "masked (causal) self-attention" does not write "causal mask": not a dropped term


def test_a_recalled_sentence_that_keeps_its_concept_leaves_nothing_out():
    report = _grade("attention", BLOCK + "The decoder block is masked self-attention, then "
                                         "cross-attention over the encoder's output, then the "
                                         "same feed-forward network.")
    (part,) = report.parts
    assert part.omissions == () and part.mark is None  # nothing left out; offline, no 🟢


PROJECTION = ("So, projection. Projection works when the instances lie close to a "
              "lower-dimensional subspace, but not always. The Swiss roll is a 2D sheet rolled "
              "up in 3D, and projecting it squashes the layers together. ")


def test_a_claim_restates_one_sentence_of_a_passage_not_every_term_in_it():
    """"Unrolling it instead is manifold learning" restates the passage's second sentence;
    the first, the **manifold hypothesis**, was not said in any words."""
    report = _grade("pca", PROJECTION + "Unrolling it instead is manifold learning.")
    (part,) = report.parts
    assert [o.point for o in part.omissions] == ["manifold hypothesis"]
    assert part.assessments[0].feedback == "you left out manifold hypothesis."


def test_the_sentence_restated_in_other_words_is_not_left_out():
    report = _grade("pca", PROJECTION + "Most real-world high-dimensional datasets lie close "
                                        "to a much lower-dimensional manifold.")
    (part,) = report.parts
    # the hypothesis is said without its name; the algorithms' name is what is missing
    assert [o.point for o in part.omissions] == ["manifold learning"]


TENSORS = ("So, PyTorch tensors. A tensor is an n-dimensional array: a scalar is 0-d, a vector "
           "1-d, a matrix 2-d and a batch of images 4-d. You create one from data with "
           "torch.tensor or with factories like torch.zeros and torch.randn. Every tensor has "
           "one dtype for all its elements, you cannot mix types. Floats default to float32 "
           "and integers to int64. Tensors cannot hold strings or arbitrary Python objects. ")


def test_a_section_two_claims_recall_in_passing_gives_its_key_points_to_the_part():
    """"Reshaping and views" is no part's main region, but two statements recall it: its
    **contiguous memory**, never said, is left out (its **shares the same data** was said in
    other words)."""
    report = _grade("tensors-autograd", TENSORS + "The view method gives a tensor with the "
                    "same data and a new shape, the number of elements must stay the same. One "
                    "dimension may be -1 and PyTorch infers it from the others.")
    (part,) = report.parts
    assert [o.point for o in part.omissions] == ["contiguous memory"]
    assert part.omissions[0].passage.text.startswith(
        "`view()` only works on tensors laid out in **contiguous memory**.")


def test_one_statement_in_passing_does_not_open_a_section():
    report = _grade("tensors-autograd", TENSORS + "One dimension may be -1 and PyTorch infers "
                                                  "it from the others.")
    (part,) = report.parts
    assert part.omissions == () and part.mark is None  # nothing left out; offline, no 🟢


REGRESSION = ("So, regression trees. Regression trees are the same idea, except a leaf predicts "
              "the mean target of its training samples and CART minimizes the MSE instead of "
              "the impurity. ")
VARIANCE = ("Trees have high variance: a small change in the data or the hyperparameters can "
            "give a completely different tree.")


def test_a_section_skipped_between_two_the_part_recalls_is_left_out_there():
    """The chapter's "Regression", then "Sensitivity to Axis Orientation", then "Decision
    Trees Have a High Variance": a part recalling the first and the last skipped the middle
    one, which no statement recalls (its section is closest to no part's text)."""
    report = _grade("decision-trees", REGRESSION + VARIANCE)
    (part,) = report.parts
    assert [o.point for o in part.omissions] == ["Sensitivity to Axis Orientation"]
    assert part.assessments[0].feedback == "you left out Sensitivity to Axis Orientation."


def test_the_middle_section_recalled_is_not_skipped():
    report = _grade("decision-trees", REGRESSION + "Every split is perpendicular to one of the "
                    "axes, so trees are sensitive to how the data is oriented. " + VARIANCE)
    (part,) = report.parts
    assert part.omissions == () and part.mark is None


def test_a_sentence_the_learner_breaks_off_names_the_gap_its_source_sentence_fills(tmp_path):
    """"The loss is the reconstruction loss plus (can't remember the second term)": the source
    sentence the learner was recalling names it, though its own passage defines it."""
    (tmp_path / "vae.md").write_text(
        "# Autoencoders\n\n## Variational autoencoders\n\n- The encoder outputs a mean coding "
        "and a standard deviation, and the coding is sampled from that Gaussian.\n- The loss "
        "has two parts: the usual **reconstruction loss**, and the **latent loss**, the KL "
        "divergence between the Gaussian of the codings and a standard Gaussian.\n")
    sources = load_sources([tmp_path / "vae.md"])
    text = ("# Notes\n\nSo, variational autoencoders. The encoder gives a mean coding and a "
            "standard deviation, and the coding is sampled from that Gaussian. The loss is the "
            "reconstruction loss plus {}.\n")
    (part,) = grade_recall(recall_from_text(text.format("(can't remember the second term)")),
                           sources, NO_CODE).parts
    assert [o.point for o in part.omissions] == ["latent loss"]
    (said,) = grade_recall(recall_from_text(text.format("the latent loss")), sources,
                           NO_CODE).parts
    assert said.omissions == ()


STACKING = ("So, boosting. Boosting trains the predictors one after another, each one fixing the "
            "mistakes of the one before. AdaBoost raises the weights of the misclassified "
            "training instances. Gradient boosting fits each new tree to the residual errors "
            "of the ensemble so far, and HistGradientBoosting bins the features.\n\n"
            "Bagging trains each predictor on a random sample drawn with replacement, pasting "
            "without replacement.\n\n")
AFTER_MARK = ("🟡 => good on boosting, but you skipped stacking.\n\nRight, stacking. You train a "
              "final model, the blender, on the predictions of the base models.\n\n"
              "🟢 => good.\n")


def test_what_the_learner_says_only_after_the_tutors_mark_is_still_left_out():
    """A re-graded session: "Right, stacking. …" answers the tutor's "you skipped stacking".
    It is judged as the learner's, but the part still left stacking out (the chapter's last
    section, after the last one the part recalled)."""
    recall = recall_from_text(f"# Notes\n\n{STACKING}{AFTER_MARK}")
    assert [recall.lines[n - 1][:15] for n in sorted(recall.prompted)] == ["Right, stacking"]
    assert "stacking" not in recall.unprompted_text.lower()
    report = grade_recall(recall, load_sources([LABELLED / "decision-trees" / "sources"]),
                          NO_CODE)
    (part,) = report.parts
    assert "Stacking" in [o.point for o in part.omissions]
    unprompted = recall_from_text(f"# Notes\n\n{STACKING}Stacking trains a final model, the "
                                  "blender, on the predictions of the base models.\n")
    assert unprompted.prompted == frozenset()
    (said,) = grade_recall(unprompted, load_sources([LABELLED / "decision-trees" / "sources"]),
                           NO_CODE).parts
    assert "Stacking" not in [o.point for o in said.omissions]



def test_a_section_skipped_after_one_a_later_part_returns_to_is_that_parts_gap():
    """Chapter 7 goes k-fold, stratified folds, leave-one-out, time series splits, grouped
    folds, grid search. The k-fold part touches the time-series order in passing ("unless
    the order matters"); it did not skip grouped folds: the part about time series splits,
    which goes on from there, did (the second validation split's cross-validation 4)."""
    session = LABELLED.parent / "labelled-validation-2" / "cross-validation"
    report = grade_recall(recall_from_text((session / "recall.md").read_text()),
                          load_sources([session / "sources"]), NO_CODE)
    assert [[o.point for o in p.omissions] for p in report.parts] == [
        ["Retraining After Selection"], [], [], ["Grouped Folds"], [], []]
