"""The bank runs clean, matching prefers precision, and code claims are verified by running."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
from ankigen.checks import Runner, all_checks, extract_claims, match_gap, verify_document  # noqa: E402
from ankigen.cli import main  # noqa: E402
from ankigen.model import Gap, GapKind, Span  # noqa: E402
from ankigen.parse import parse_file  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def runner():
    with Runner(timeout_s=20) as r:
        yield r


def _asserts(code: str) -> bool:
    """An `assert` statement, or `raise AssertionError`, in the code itself (not a comment)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Raise) and node.exc is not None and \
                "AssertionError" in ast.unparse(node.exc):
            return True
    return False


def test_every_bank_check_runs_clean_and_asserts(runner):
    checks = all_checks()
    assert len(checks) >= 40
    assert len({c.id for c in checks}) == len(checks)
    for c in checks:
        assert _asserts(c.code), f"{c.id} only prints"
        assert c.title and c.demonstrates and c.cues + c.topics
    results = runner.run_many([c.code for c in checks])
    failed = {c.id: r.exception for c, r in zip(checks, results, strict=True) if r.status != "ok"}
    assert not failed
    assert all(r.stdout for r in results), "every check shows what it printed"


def test_a_broken_bank_check_would_fail(runner):
    """The test above can fail: a check whose assertion is false is reported as error."""
    res = runner.run(all_checks()[0].code.replace("t.ndim == 2", "t.ndim == 3"))
    assert res.status == "error" and res.exception.startswith("AssertionError")


def _gaps(name):
    return parse_file(FIXTURES / "seeds" / name).gaps


def test_matching_on_the_seeds():
    gaps = _gaps("recall-ch9-10.md")
    by_kind = {g.kind: g for g in gaps}
    assert match_gap(by_kind[GapKind.FORGOT_NAME])[0].id == "parameter"
    assert match_gap(by_kind[GapKind.LOOKED_UP])[0].id == "tensordataset"
    assert match_gap(by_kind[GapKind.INLINE_ANSWER])[0].id == "to-device"
    hyper = by_kind[GapKind.ASSESSMENT]
    assert match_gap(hyper) == (None, "no check fits well enough (precision over recall)")
    ch10 = {g.kind: g for g in _gaps("recall-ch10-pytorch.md")}
    assert match_gap(ch10[GapKind.SELF_QUESTION]) == (
        next(c for c in all_checks() if c.id == "inplace-leaf"),
        "what was missed names 'in place operations'")
    assert match_gap(ch10[GapKind.ASSESSMENT])[0].id == "no-grad"
    assert match_gap(ch10[GapKind.INLINE_MARK])[0] is None  # "gpu speed and ram both matter"


def test_matching_on_our_example_notes():
    doc = parse_file(FIXTURES / "checks" / "recall-pytorch-training.md")
    got = {g.line: (match_gap(g)[0] or _NONE).id for g in doc.gaps}
    assert got == {27: "backward-not-backwards", 30: "inplace-leaf", 32: "dropout-train-eval",
                   34: "parameter", 36: "to-device", 38: "tensordataset", 40: "none",
                   42: "lr-schedule"}
    cnn = parse_file(FIXTURES / "vault" / "recall-cnn.md")
    padding = next(g for g in cnn.gaps if "padding and stride" in g.prompt)
    assert match_gap(padding)[1] == "what was missed mentions 'padding' and 'stride'"


class _NONE:
    id = "none"


def _gap(answer: str | None, prompt: str, *, context: str = "", term: str | None = None,
         code: str | None = None, kind: GapKind = GapKind.ASSESSMENT) -> Gap:
    return Gap(kind=kind, mark=None, line=1, span=Span(1, 1), part=0, topic="t", chapter=None,
               section="Notes", prompt=prompt, context=context, answer=answer,
               answer_source="quote" if answer else None, term=term, code=code)


# Gaps whose text mentions a bank topic in passing: none of them gets a check.
NEAR_MISSES = [
    _gap("AlexNet stacked conv layers directly and used ReLU and dropout to go deeper.",
         "Architectures — what about AlexNet?"),
    _gap("A padding mask stops every position attending to the padding tokens of a batch.",
         "Masking — what about padding mask?"),
    _gap("Keep components until the cumulative explained variance reaches 95%.",
         "PCA — how many components?"),
    _gap("The decoder's hidden state at each step is the query the attention uses.",
         "Attention — what about the decoder?"),
    _gap("A thread pool runs the loading workers side by side.", "Data — what about workers?"),
    _gap("Dynamic programming fills a table of sub-results.", "Algorithms — what about DP?"),
    _gap("The KL divergence between two distributions is never negative.",
         "VAEs — what about the KL term?"),
    _gap("Parameter sharing is what makes conv layers cheap.",
         "CNNs — what about parameter sharing?"),
    _gap("Global average pooling averages each feature map into a single number.",
         "CNN heads — what about global average pooling?"),
    _gap("Its main advantage over SGD is the speed-up from hardware optimization.",
         "Mini-batch gradient descent — what about hardware optimization?"),
    _gap("Adam adapts the learning rate of each parameter.", "Optimizers — what about Adam?"),
    _gap("`view()` only works on tensors laid out in contiguous memory.",
         "PyTorch tensors — what about contiguous memory?",
         context="torch.tensor defaults to float32, the default dtype, unlike numpy."),
    _gap(None, "Datasets — Learning rate schedules lower the rate as we train, "
         "initialization, … what else?", kind=GapKind.INLINE_MARK),
    _gap("For an intermediate tensor you ask for its grad with retain_grad().",
         "Only leaves with requires_grad get .grad; for others you call […]",
         term="retain_grad()", kind=GapKind.FORGOT_NAME),
    _gap(None, "Manual parameter updates — w is still a leaf because the in-place update "
         "ran with the graph off … what did you forget here?", kind=GapKind.FORGOT),
]


@pytest.mark.parametrize("gap", NEAR_MISSES, ids=lambda g: g.prompt[:40])
def test_a_topic_in_passing_gets_no_check(gap):
    check, why = match_gap(gap)
    assert check is None, why


def test_a_cloze_term_or_two_agreeing_cues_do_get_one():
    assert match_gap(_gap(None, "The layer that zeroes random units is […]", term="dropout",
                          kind=GapKind.FORGOT_NAME)) == (
        next(c for c in all_checks() if c.id == "dropout-train-eval"),
        "the missed term mentions 'dropout'")
    assert match_gap(_gap(None, "Optimizers — Weight decay in AdamW is decoupled, and the "
                          "formula … what did you forget here?", kind=GapKind.FORGOT))[1] == \
        "the question names 'AdamW' and 'Weight decay' (nothing missed on record)"
    wrong_line = _gap("loss.backward() fills .grad of every tensor with requires_grad=True.",
                      "Training — what is wrong with this line?", code="loss.backwards()",
                      kind=GapKind.WRONG_CODE)
    assert match_gap(wrong_line)[0].id == "backward-not-backwards"  # the line outweighs


def test_claim_extraction():
    code = "x = f()\nprint(x)  # prints: tensor(6.)\n# prints tensor(6.) since 2*x\nxt.grad\ny  # -> True"
    claims = extract_claims(code, 10)
    assert [(c.line, c.expected, c.expr_line) for c in claims] == [
        (11, "tensor(6.)", 11), (12, "tensor(6.)", 13), (14, "True", 14)]


def test_fastai_reference_seed(runner):
    report = verify_document(parse_file(FIXTURES / "seeds" / "reference-fastai-lesson4.md"), runner)
    statuses = {b.block.span.start: b.status for b in report.blocks}
    bad_import = next(b for b in report.blocks if "torch.nn.function as F" in b.block.code)
    assert bad_import.status == "error"
    assert "No module named 'torch.nn.function'" in bad_import.exception
    assert statuses[41] == "not runnable as written"  # `partial` is defined nowhere in the note
    grad = next(c for b in report.blocks for c in b.claims if "0.6667" in c.claim.expected)
    assert grad.verdict == "verified"


def test_check_command_reports_contradictions_and_exits_nonzero(tmp_path):
    note = tmp_path / "ref.md"
    shutil.copy(FIXTURES / "checks" / "reference-claims.md", note)
    result = CliRunner().invoke(main, ["check", str(note)])
    assert result.exit_code == 4  # a block errored (4 outweighs the contradicted claim's 3)
    assert "contradicted: tensor([2., 4., 6.]) (it printed 'tensor([ 4.,  8., 12.])')" in result.output
    assert result.stderr.strip().splitlines()[-1] == \
        "3 blocks (1 error, 2 ok); claims: 1 contradicted, 2 verified"


def test_every_claim_form_is_verified_by_running(runner):
    """`# prints X since …` above a bare expression, `# prints:`, `# ->`, `# output:`,
    `# returns`, on the line or above it; blocks run like a notebook, in one namespace."""
    doc = parse_file(FIXTURES / "checks" / "reference-claim-forms.md")
    report = verify_document(doc, runner)
    assert [(b.block.span.start, b.status) for b in report.blocks] == [
        (6, "ok"), (19, "ok"), (28, "ok"), (32, "not runnable as written"), (36, "error"),
        (41, "skipped")]
    claims = [(c.claim.line, c.claim.expected, c.verdict, c.actual)
              for b in report.blocks for c in b.claims]
    assert claims == [
        (14, "tensor(6.)", "verified", "tensor(6.)"),
        (19, "torch.float32", "verified", "torch.float32"),
        (20, "torch.Size([3])", "verified", "torch.Size([3])"),
        (21, "tensor([2, 4])", "verified", "tensor([2, 4])"),
        (22, "3", "verified", "3"),
        (23, "tensor(7.)", "verified", "tensor(7.)"),
        (28, "5.0", "contradicted", "6.0"),
        (41, "tensor([1.])", "not run", None)]
    blocks = {b.block.span.start: b for b in report.blocks}
    assert blocks[32].exception == "NameError: name 'w' is not defined"
    assert blocks[36].exception == "ModuleNotFoundError: No module named 'torch.nn.function'"
    assert blocks[41].exception == "NameError: name 'G' is not defined"  # G's block failed


def test_check_command_on_every_claim_form(tmp_path):
    note = tmp_path / "forms.md"
    shutil.copy(FIXTURES / "checks" / "reference-claim-forms.md", note)
    result = CliRunner().invoke(main, ["check", str(note)])
    assert result.exit_code == 4
    assert "line 28: contradicted: 5.0 (it printed '6.0')" in result.output
    assert "block lines 32-32: not runnable as written — NameError: name 'w' is not defined" \
        in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "6 blocks (1 error, 1 not runnable as written, 3 ok, 1 skipped); claims: 1 contradicted, "
        "1 not run, 6 verified")


def test_check_command_exits_4_for_an_error_even_with_no_claim_contradicted(tmp_path):
    """The fastai seed: fastai-only names are not runnable as written (counted, not failed)
    and no claim is contradicted, but its bad import is the note's error: exit 4."""
    note = tmp_path / "lesson4.md"
    shutil.copy(FIXTURES / "seeds" / "reference-fastai-lesson4.md", note)
    result = CliRunner().invoke(main, ["check", str(note)])
    assert result.exit_code == 4, result.output
    assert "block lines 179-185: error — ModuleNotFoundError: No module named " \
        "'torch.nn.function'" in result.output
    assert "block lines 146-154: not runnable as written — NameError: name 'tensor' is not " \
        "defined" in result.output
    assert result.stderr.strip().splitlines()[-1] == \
        "10 blocks (1 error, 6 not runnable as written, 3 ok); claims: 1 not run, 1 verified"


def test_a_block_that_hangs_keeps_the_results_before_it(tmp_path):
    """Blocks report as they finish: the one that hangs is a timeout (exit 4), the ones
    after it did not run, and none of it is an error or a contradicted claim."""
    note = tmp_path / "hang.md"
    shutil.copy(FIXTURES / "checks" / "hostile" / "reference-hang.md", note)
    result = CliRunner().invoke(main, ["check", str(note), "--timeout", "1"])
    assert result.exit_code == 4, result.output
    lines = [x.strip() for x in result.stdout.splitlines()[1:]]
    assert lines == ["block lines 4-6: ok", "line 6: verified: tensor(2.)",
                     "block lines 10-11: timeout — block 2 ran past its 1 s limit and was stopped",
                     "block lines 15-15: not run", "line 15: not run: tensor([3., 3.])"]
    assert result.stderr.strip().splitlines()[-1] == \
        "3 blocks (1 not run, 1 ok, 1 timeout); claims: 1 not run, 1 verified"
