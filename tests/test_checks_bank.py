"""The bank runs clean, matching prefers precision, and code claims are verified by running."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
from ankigen.checks import Runner, all_checks, extract_claims, match_gap, verify_document  # noqa: E402
from ankigen.cli import main  # noqa: E402
from ankigen.model import GapKind  # noqa: E402
from ankigen.parse import parse_file  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def runner():
    with Runner(timeout_s=20) as r:
        yield r


def test_every_bank_check_runs_clean_and_asserts(runner):
    checks = all_checks()
    assert len(checks) >= 40
    assert len({c.id for c in checks}) == len(checks)
    for c in checks:
        assert "assert" in c.code or "AssertionError" in c.code, f"{c.id} only prints"
        assert c.title and c.demonstrates
    results = runner.run_many([c.code for c in checks])
    failed = {c.id: r.exception for c, r in zip(checks, results) if r.status != "ok"}
    assert not failed


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
    check, why = match_gap(hyper)
    assert check is None and "precision" in why  # no check fits hyperparameter search
    ch10 = {g.kind: g for g in _gaps("recall-ch10-pytorch.md")}
    assert match_gap(ch10[GapKind.SELF_QUESTION])[0].id == "inplace-leaf"
    assert match_gap(ch10[GapKind.ASSESSMENT])[0].id == "no-grad"


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
    assert result.exit_code == 1
    assert "contradicted: tensor([2., 4., 6.]) (it printed 'tensor([ 4.,  8., 12.])')" in result.output
    assert result.stderr.strip().splitlines()[-1] == \
        "3 blocks (1 not running); claims: 1 contradicted, 2 verified"
