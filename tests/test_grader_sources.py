"""Sources into passages and key points; words, phrases and claims as the grader reads them."""

from __future__ import annotations

from pathlib import Path

from grader.coverage import mentioned
from grader.model import Claim
from grader.recall import recall_from_text, sentence_claims
from grader.retrieve import Index, content_tokens, same_word
from grader.sources import load_sources

FIXTURES = Path(__file__).parent / "fixtures" / "grader" / "sources"


def test_markdown_passages_carry_lines_sections_and_kinds():
    src = load_sources([FIXTURES / "cnn-notes.md"])
    got = [(p.span.start, p.span.end, p.kind, p.section.split(" › ")[-1]) for p in src.passages]
    assert got == [
        (5, 5, "prose", "Convolutional layers"),
        (9, 9, "item", "Padding and stride"),
        (10, 10, "item", "Padding and stride"),
        (14, 14, "prose", "Pooling layers"),
        (18, 18, "prose", "Training a CNN in PyTorch"),
        (21, 27, "code", "Training a CNN in PyTorch"),
    ]
    assert src.passages[1].text.startswith("With **zero padding**")  # the bullet marker is gone
    assert src.passages[0].cite() == f"{FIXTURES / 'cnn-notes.md'}:5"


def test_plain_text_takes_short_lines_standing_alone_as_headings():
    src = load_sources([FIXTURES / "history.txt"])
    assert [(p.span.start, p.span.end, p.section) for p in src.passages] == [
        (3, 3, "A short history of CNNs"), (5, 5, "A short history of CNNs")]


def test_key_points_are_headings_bold_terms_and_identifiers(tmp_path):
    (tmp_path / "n.md").write_text(
        "# Lesson 4\n\n## Notes\n\n- `X` has shape `(m, n + 1)`; call `model.eval()` first.\n\n"
        "## Dropout\n\n**Dropout** zeroes units at random; a **dropout rate** of `p=0.5`.\n")
    points = [(k.term, k.origin) for k in load_sources([tmp_path / "n.md"]).points]
    # Generic headings and non-identifier code (`(m, n + 1)`, `p=0.5`) are not key points, and
    # the text between two code spans (`X` has shape `…`) is not one either.
    # The section's own heading comes first; its bold "Dropout" is the same point.
    assert points == [("model.eval()", "code"), ("Dropout", "heading"), ("dropout rate", "bold")]


def test_identifiers_are_kept_whole_and_in_pieces():
    assert content_tokens("call nn.Parameter and x.requires_grad_()") == [
        "call", "nn.parameter", "nn", "paramet", "x.requires_grad", "requir", "grad"]


def test_short_forms_match_but_short_words_do_not():
    assert same_word("vgg", "vggnet") and same_word("conv", "convolut")
    assert not same_word("net", "network") and not same_word("pad", "padding_mask")


def test_a_short_form_the_sources_use_as_a_word_is_not_short_for_a_longer_one(tmp_path: Path):
    """Notes that write `log` (log-odds, −log(p)) beside `logit` mean two things by them;
    notes that never write `vgg` or `conv` alone still take them for `VGGNet`, `convolution`."""
    (tmp_path / "notes.md").write_text(
        "# Logistic regression\n\nThe score t is the **logit**: t = log(p / (1 - p)), the "
        "log of the odds.\n\n# CNNs\n\nA **convolutional layer** slides kernels. "
        "**VGGNet** uses 3 x 3 convolutions. A `LayerNorm` normalizes each token.\n")
    words = load_sources([tmp_path]).words
    assert {"log", "logit", "layer"} <= words and not {"vgg", "conv"} & words
    said = content_tokens("The cost is -log(p). VGG is regular. A conv layer is cheap.")
    assert not mentioned("logit", said, words)
    assert mentioned("logit", said)  # without the sources' words, the old short form
    assert mentioned("VGGNet", said, words) and mentioned("convolution", said, words)
    # the learner's longer word still says the shorter one, whatever the sources use
    assert same_word("logit", "log", words) and not same_word("log", "logit", words)
    assert mentioned("layer normalization", content_tokens("a normalization, LayerNorm(x)"),
                     words)


def test_a_longer_key_term_is_mentioned_only_as_a_phrase():
    said = content_tokens("We pad the inputs. A causal mask hides the future. VGG is regular.")
    assert not mentioned("padding mask", said)
    assert mentioned("causal mask", said) and mentioned("VGGNet", said)
    assert mentioned("`torch.no_grad()`", content_tokens("inside torch.no_grad() we"))


def test_claims_skip_questions_plans_topics_and_admitted_gaps():
    """Text after `=>` is an answer someone wrote in, not the learner's recall."""
    text = ("# Notes\n\nSo, pooling. What do we need? A pooling layer shrinks its input window by "
            "window. Let's move on to padding next time. Max pooling keeps the largest value "
            "in torch.nn.MaxPool2d. I forgot the name of the last layer => the name is Dense.\n")
    claims = sentence_claims(recall_from_text(text))
    assert [c.text for c in claims] == [
        "A pooling layer shrinks its input window by window.",
        "Max pooling keeps the largest value in torch.nn.MaxPool2d."]
    assert {c.line for c in claims} == {3}


def test_bm25_finds_the_passage_a_claim_is_about():
    src = load_sources([FIXTURES])
    index = Index(src.passages)
    claim = Claim("c1", 0, 1, "Max pooling outputs the largest value of each window")
    (best, score), *_ = index.top(claim.text)
    assert best.section.endswith("Pooling layers") and score > 0
    assert index.top("entirely unrelated zebra words") == []


def test_a_heading_joining_two_things_names_each(tmp_path):
    """"Centroid Initialization and K-Means++": a recall may cover the first and leave out the
    second; a term the heading joins and a passage defines in bold is the bold one."""
    (tmp_path / "n.md").write_text(
        "# Clustering\n\n## Centroid initialization and K-Means++\n\nRun it several times and "
        "keep the best.\n\n## Projection and manifold learning\n\nThose are **manifold "
        "learning** algorithms.\n")
    points = [(k.term, k.origin) for k in load_sources([tmp_path / "n.md"]).points]
    assert points == [("Centroid initialization and K-Means++", "heading"),
                      ("Centroid initialization", "heading"), ("K-Means++", "heading"),
                      ("Projection and manifold learning", "heading"),
                      ("Projection", "heading"), ("manifold learning", "bold")]


def test_a_plus_plus_suffix_is_a_word_of_its_own():
    """K-Means++ is not k-means: the learner who says "k-means" never said "K-Means++"."""
    assert content_tokens("K-Means++ and C#") == ["mean", "meansplusplus", "csharp"]
    assert not set(content_tokens("C++ is fast")) & set(content_tokens("K-Means++"))
    assert not mentioned("K-Means++", content_tokens("then k-means moves every centroid"))
    assert mentioned("K-Means++", content_tokens("k-means++ picks spread-out centroids"))


def test_a_headings_names_keep_their_underscores(tmp_path):
    # "## weights_only and safety" is about `weights_only`; stripping every "_" as emphasis
    # made it "weightsonly", a point no recall or tutor ever names
    (tmp_path / "s.md").write_text("# Saving\n\n## weights_only and safety\n\nSafe loading.\n\n"
                                   "## `map_location` and *devices*\n\nWhere tensors go.\n",
                                   encoding="utf-8")
    sections = [p.section for p in load_sources([tmp_path]).passages]
    assert sections == ["Saving › weights_only and safety", "Saving › map_location and devices"]


def test_two_files_with_one_section_name_are_two_sections(tmp_path):
    # lecture notes without a title heading: both files open with "## Overview". Keyed by the
    # heading alone they were one section, and a gradient-descent part was told it left out
    # the decision trees' "Gini impurity"
    from grader.grade import GradeOptions, grade_recall

    (tmp_path / "a.md").write_text(
        "## Overview\n\nGradient descent moves the parameters downhill, step by step, scaled by "
        "the **learning rate**. Each step follows the negative gradient of the loss.\n\n"
        "A **momentum** term keeps a running average of past gradients.\n", encoding="utf-8")
    (tmp_path / "b.md").write_text(
        "## Overview\n\nDecision trees split the data on the feature with the best **Gini "
        "impurity** drop. Each split asks one yes or no question.\n", encoding="utf-8")
    text = ("# Notes\n\nSo, gradient descent. Gradient descent moves the parameters downhill, "
            "step by step. Each step follows the negative gradient of the loss.\n")
    report = grade_recall(recall_from_text(text), load_sources([tmp_path]),
                          GradeOptions(run_code=False))
    assert [(o.point, Path(o.passage.file).name) for o in report.parts[0].omissions] == [
        ("momentum", "a.md")]
