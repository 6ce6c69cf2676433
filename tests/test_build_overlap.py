"""A build with checks starts the check server while its notes are parsed (issue 13, item 4),
and says when each stage ran (`BuildResult.timings`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered

from ankigen.build import PARALLEL_FROM, build
from ankigen.checks.early import may_need_checks

FIXTURES = Path(__file__).parent / "fixtures"


def _vault(tmp_path: Path, fixture: Path, copies: int) -> Path:
    """`copies` copies of one notes file: enough for the build's parse pool to fork."""
    vault = tmp_path / "vault"
    vault.mkdir()
    for n in range(copies):
        shutil.copy(fixture, vault / f"{fixture.stem}-{n:03d}.md")
    return vault


def _imported(tmp_path: Path, deck: Path, notes: int) -> list[str]:
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, deck).new == notes
        return [a for _, _, a in rendered(col)]
    finally:
        col.close()


@pytest.mark.parametrize(("text", "expected"), [
    (b"We wrap tensors in a TensorDataset.", True),
    (b"import torch\n", True),
    (b"x.backward() then optim.step()", True),
    (b"~~~python\nprint(1)\n~~~\n", True),
    (b"  ```py\nprint(1)\n```\n", True),
    (b"Pooling layers have no trainable parameters.\n```sql\nselect 1\n```\n", False),
    (b"The learner contends that the attention span is short.", False),
])
def test_what_may_need_a_check_server(text, expected):
    assert may_need_checks([b"# Notes\n", text]) is expected


def test_the_check_server_starts_while_the_notes_are_parsed(tmp_path):
    pytest.importorskip("torch")
    from ankigen.checks import build_hook

    vault = _vault(tmp_path, FIXTURES / "checks" / "recall-pytorch-training.md", PARALLEL_FROM)
    deck = tmp_path / "deck.apkg"
    result = build([vault], deck, checks=build_hook("cpu"), now=1_000)
    assert result.parsed == PARALLEL_FROM and result.checks_run > 0
    t = result.timings
    assert set(t) == {"parse", "server start", "checks", "deck"}
    # begun once the pool was parsing, before the parse ended; the checks waited for both
    assert t["parse"][0] <= t["server start"][0] < t["parse"][1]
    assert t["checks"][0] >= t["parse"][1] and t["checks"][1] >= t["server start"][1]
    assert t["deck"][0] >= t["checks"][1]
    answers = _imported(tmp_path, deck, result.notes)
    assert sum("Check: nn.Parameter registers a tensor as a parameter" in a
               for a in answers) == PARALLEL_FROM  # every copy's card carries the real output


def test_notes_without_pytorch_start_no_check_server(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import ankigen.checks.keeper as keeper_module
    from ankigen.checks import build_hook
    from ankigen.errors import CheckError

    started: list[dict[str, object]] = []

    class Recorded:  # what open_runner starts with ANKIGEN_KEEP_WARM=0 (tests/conftest.py)
        def __init__(self, **kw: object) -> None:
            started.append(kw)
            raise CheckError("no server was expected here")

    monkeypatch.setattr(keeper_module, "Runner", Recorded)
    vault = _vault(tmp_path, FIXTURES / "parse" / "grader-annotations.md", PARALLEL_FROM)
    deck = tmp_path / "deck.apkg"
    result = build([vault], deck, checks=build_hook("cpu"), now=1_000)
    assert started == [] and result.checks_run == 0
    assert set(result.timings) == {"parse", "checks", "deck"}
    _imported(tmp_path, deck, result.notes)


def test_timings_of_a_build_and_of_an_unchanged_rebuild(tmp_path):
    vault = _vault(tmp_path, FIXTURES / "parse" / "grader-annotations.md", 2)
    deck = tmp_path / "deck.apkg"
    first = build([vault], deck, now=1_000)
    t = first.timings
    assert set(t) == {"parse", "deck"}
    assert 0 <= t["parse"][0] <= t["parse"][1] <= t["deck"][0] <= t["deck"][1] <= first.seconds
    assert first.to_dict()["timings"] == t
    _imported(tmp_path, deck, first.notes)
    again = build([vault], deck, now=2_000)
    assert not again.written and again.timings == {}  # nothing ran: no stage to time


class _Runner:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_an_early_start_hands_over_its_runner_or_its_error():
    import threading

    from ankigen.checks.early import EarlyStart
    from ankigen.errors import CheckError

    runner = _Runner()
    early = EarlyStart(lambda: runner)
    assert early.take() is runner and runner.closed == 0
    assert early.ended_at is not None and early.ended_at >= early.started_at

    def refuse() -> _Runner:
        raise CheckError("the check server did not start inside bubblewrap")

    with pytest.raises(CheckError, match="did not start inside bubblewrap"):
        EarlyStart(refuse).take()

    gate = threading.Event()  # dropped while still opening: closed once it is open
    slow = _Runner()
    late = EarlyStart(lambda: (gate.wait(10), slow)[1])
    late.drop()
    assert slow.closed == 0
    gate.set()
    late._thread.join(10)
    assert slow.closed == 1
    done = EarlyStart(lambda: runner)  # dropped once open: closed at once
    done._thread.join(10)
    done.drop()
    assert runner.closed == 1
