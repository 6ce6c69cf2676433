"""Issue 12, item 1: cards only from what was marked or what the learner's own recall got
wrong. The corpus in tests/fixtures/unmarked (README there) is notes nobody marked, of
eight kinds; only its `sessions/` are recall-shaped and make cards."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered
from click.testing import CliRunner

from ankigen.cli import main
from ankigen.code_claims import extract_claims
from ankigen.marks import mark_in
from ankigen.model import GapKind
from ankigen.parse import parse_file, parse_text
from ankigen.python_code import fence_lang, is_python, prepare

CORPUS = Path(__file__).parent / "fixtures" / "unmarked"
NOT_SESSIONS = sorted(p for p in CORPUS.rglob("*.md") if "sessions" not in p.parts)
SESSIONS = sorted((CORPUS / "sessions").glob("*.md"))


def test_the_corpus_is_big_and_varied_enough() -> None:
    kinds = {p.relative_to(CORPUS).parts[0] for p in NOT_SESSIONS if p.parent != CORPUS}
    assert len(NOT_SESSIONS) >= 100 and len(kinds) >= 5


@pytest.mark.parametrize("path", NOT_SESSIONS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_a_file_nobody_marked_is_reference_material_with_no_gaps(path: Path) -> None:
    doc = parse_file(path)
    assert (doc.kind, doc.gaps, doc.assessments) == ("reference", (), ())


def test_unmarked_sessions_still_make_their_unmarked_gaps() -> None:
    got = {p.stem: [(g.kind, g.term) for g in parse_file(p).gaps] for p in SESSIONS}
    assert got == {
        "session-autograd": [(GapKind.FORGOT, None)],  # "I don't remember how to stop …"
        "session-cnn": [(GapKind.LOOKED_UP, "ImageFolder")],
        "session-optimizers": [(GapKind.FORGOT_NAME, "RMSProp"), (GapKind.SELF_QUESTION, None)],
        "session-rnn": [(GapKind.FORGOT_NAME, "the cell state")],
    }


def _text(h: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", h.split("</style>")[-1]))


def test_building_the_corpus_with_checks_makes_cards_only_from_sessions(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from ankigen.build import build
    from ankigen.checks import build_hook

    vault = tmp_path / "vault"
    shutil.copytree(CORPUS, vault)
    out = tmp_path / "deck.apkg"
    result = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert result.checks_run > 0 and "isolation: sandboxed" in result.checks, result.checks
    # reference notes' code ran and is counted; what cannot run here is said, not carded
    m = re.search(r"reference notes' code: (\d+) blocks \(([^)]*)\)", result.checks)
    assert m and int(m.group(1)) > 100, result.checks
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", m.group(2)))
    assert counts.get("not runnable here", 0) >= 50 and "error" not in counts, counts
    assert "wrong claim" not in result.checks  # every explicit claim in the corpus is right
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        log = import_apkg(col, out)
        assert log.new == result.notes
        decks = {col.decks.name(col.get_card(c).did) for c in col.find_cards("")}
        fronts = [_text(q) for _, q, _ in rendered(col)]
    finally:
        col.close()
    assert decks == {f"ankigen::sessions::{p.stem}" for p in SESSIONS}
    # 5 unmarked gaps, and the recalled `loss.backwards()` that does not run as written
    assert len(fronts) == 6
    assert any("backwards" in f for f in fronts), fronts


def test_check_on_descriptive_comments_and_d2l_cells_exits_0(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    for name in ("lectures/tensors.md", "chapters/tensors.md", "notebooks/timing.md",
                 "notebooks/load-ext.md", "notebooks/ipython-help.md"):
        shutil.copy(CORPUS / name, tmp_path / name.replace("/", "-"))
    r = CliRunner().invoke(main, ["check", *sorted(str(p) for p in tmp_path.glob("*.md"))])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "not runnable here — d2l's cell for another framework: %%tab mxnet" in out
    assert "not runnable here — needs d2l, which is not installed here" in out
    assert "verified: torch.Size([2, 3])" in out and "verified: 499500" in out
    assert "verified: 4.0" in out and "verified: /" in out
    assert "contradicted" not in out and "error" not in out


@pytest.mark.parametrize("line", [
    "- **Apples** represented as red dots (🔴).",
    "- 🟢: on track",
    "- 🔴 The Elements of Statistical Learning, not started",
    "1. **🔴 High**: the only server has no backup.",
    "3. **🟢**: the recall restates the matching source section accurately",
    "Counts this term: 12 🟢, 5 🟡, 2 🔴.",
    "We colour the essays: 🟢 = meets the brief, 🟡 = partly, 🔴 = missing.",
    "Python 3.12 🟡 (flaky), 3.13 🔴 (numpy wheels missing).",
    "The bot replies with `🟢` when the build passes.",
    "(🔴 > 🟡 > 🟢), not the closing line.",
    "Tomatoes are marked 🔴 on the map, beans 🟢 and squash 🟡.",
    "🟢 🔴 🟡 🔴",
    "- [ ] BERT 🟡",
])
def test_emoji_used_as_data_are_not_marks(line: str) -> None:
    assert mark_in(line) == -1


@pytest.mark.parametrize("line", [
    "🟡 => fine, but you skipped padding and stride.",
    "🔴 => max pooling has no weights.",
    "🟢",
    "🔴 pooling has no weights; you said it learns a kernel.",
    "- 🟡 => you left out the bias.",
    "**🟡** => poor recall here.",
    "Momentum keeps a running average, 🟡 (can't recall the second one) and Adam",
    "initialization, 🟡 (forgot the rest) momentum?..",
    "and you can't overload it. 🟡 => gpu speed and ram both matter.",
])
def test_marks_as_notes_write_them_still_count(line: str) -> None:
    assert mark_in(line) == min(line.find(e) for e in "🟢🟡🔴" if e in line)


def test_emoji_in_tables_and_headings_make_no_session() -> None:
    text = ("# Status 🟢\n\n| part | state |\n| --- | --- |\n| api | 🔴 |\n\n"
            "## 🟡 In progress\n\n- settings page\n")
    assert parse_text(text).kind == "reference"


@pytest.mark.parametrize("text, shaped", [
    ("# Goal\nRecall X.\n\n# Notes\nSo, X. I forgot what Y is.\n", True),
    ("# Debrief\n\n# Notes\nSo, X. I forgot what Y is.\n", True),
    ("# Notes\nSo, X. I forgot what Y is.\n\n---\n\nSo, Z.\n", True),
    ("# Notes\nSo, X. I forgot what Y is.\n", True),  # the session's notes on their own
    ("# Lecture 3\n\n## Notes\nWhat do we need? A loss.\n\n---\n\nMore.\n", False),
    ("# Lecture 3\n\n# Notes\nSo, X. I forgot what Y is.\n", False),
    ("# Lecture 3\n\n# Notes\nSo, X. I forgot what Y is.\n\n---\n\nSo, Z.\n", True),
    ("# Transformers\nX.\n\n# Goal\nY, what else?\n\n## Notes\nZ.\n", True),
    ("# Transformers\nX.\n\n## Notes\nI forgot what Y is.\n\n# Goal\nY.\n", False),
])
def test_recall_shaped(text: str, shaped: bool) -> None:
    assert (parse_text(text).kind == "recall") is shaped


@pytest.mark.parametrize("info, lang", [
    ("{.python .input}", "python"), ("{.python .input  n=3}", "python"),
    ("{.json .output n=3}", "json"), ("{python}", "python"), ("python title=x.py", "python"),
    ("", ""), ("Bash", "bash"),
])
def test_fence_language(info: str, lang: str) -> None:
    assert fence_lang(info) == lang


@pytest.mark.parametrize("code, python", [
    ("git status\ngit log --oneline -5", False),
    ("$ pip install torch", False),
    ("name: ci\non: [push]", False),  # YAML: parses as annotations, does nothing a program does
    ("version = \"0.3.0\"\n[tool.ruff]\nline-length = 100", False),
    ("@book{goodfellow2016,\n  title={Deep Learning},\n}", False),
    ("tensor([1., 2.])", False),
    ("[0.5, 2.5, 4.5]", False),
    ("42", False),
    ("Hello World", False),
    ("x = 1\nprint(x)", True),
    ("import torch", True),
    ("def f(x):\n    return x", True),
    ("%matplotlib inline\nimport math", True),  # IPython lines aside, a program
    ("t.sum(dim=0)", True),
])
def test_an_untagged_fence_is_python_when_it_parses_and_looks_like_it(code: str,
                                                                          python: bool) -> None:
    assert is_python("", code) is python


def test_tagged_fences() -> None:
    assert is_python("python", "this is not python at all")  # the learner said so
    assert not is_python("bash", "print(1)") and not is_python("text", "import os")


def test_ipython_lines_are_left_out_so_the_rest_runs() -> None:
    p = prepare("%matplotlib inline\nimport math\n!ls\n    \nmath.sqrt?\n%time y = math.pi")
    assert p.code == "pass\nimport math\npass\n    \npass\ny = math.pi"
    assert p.removed == ("%matplotlib inline", "!ls", "math.sqrt?", "%time y = math.pi")
    assert p.not_python is None and p.shell
    assert prepare("%%tab pytorch\nimport torch").code == "pass\nimport torch"
    assert prepare("%%time\nx = 1").code == "pass\nx = 1"
    assert prepare("x = 1").removed == ()  # valid Python is never touched
    # pasted from a web page: non-breaking spaces for indentation
    assert prepare("for i in range(2):\n\xa0\xa0\xa0 print(i)").code == \
        "for i in range(2):\n    print(i)"
    assert prepare("x\xa0= (1").code == "x\xa0= (1"  # still broken: left as written


@pytest.mark.parametrize("code, why", [
    ("%%tab mxnet\nfrom mxnet import np", "d2l's cell for another framework: %%tab mxnet"),
    ("%%bash\nls -la", "IPython cell magic, not Python: %%bash"),
    ("files = !ls *.csv\nlen(files)", "IPython syntax, runs only in Jupyter: files = !ls *.csv"),
])
def test_cells_that_are_not_python(code: str, why: str) -> None:
    assert prepare(code).not_python == why


# A line nested thousands deep exhausts Python's parser (RecursionError, MemoryError), and a
# null byte is a ValueError: a hostile note must get "not Python", never a traceback.
DEEP = ["x" + ".b" * 3000, "-" * 10000 + "1", "print(1)\0"]


@pytest.mark.parametrize("code", DEEP, ids=["attribute-chain", "unary-chain", "null-byte"])
def test_code_python_cannot_parse_is_not_python(code: str) -> None:
    assert not is_python("", code)
    assert prepare(code).code == code  # left as written


def test_a_note_with_code_too_deep_to_parse_still_builds(tmp_path: Path) -> None:
    notes = tmp_path / "deep.md"
    body = "\n\n".join(f"```\n{code.replace(chr(0), '')}\n```" for code in DEEP)
    notes.write_text(f"# Notes\n\nConvolutions share weights 🟡 => and padding?\n\n{body}\n")
    result = CliRunner().invoke(main, ["parse", str(notes)])
    assert result.exit_code == 0, result.output
    assert "1 card" in result.output


def test_only_explicit_claims_are_claims() -> None:
    code = "\n".join([
        "x = 1",
        "# Output layer",
        "y = 2  # Print the model architecture",
        "print(x)  # prints loss for every 10th epoch",
        "z = 3  # returns the sum",
        "print(x)  # prints: 1",
        "# prints tensor(6.) since the derivative is 2x",
        "x",
        "x  # -> 1",
        "int(x)  # returns 3",
        "x  # Output: (batch, 10)",
    ])
    got = [(c.line, c.expected, c.form) for c in extract_claims(code, 1)]
    assert got == [(6, "1", "prints"), (7, "tensor(6.)", "prints"), (9, "1", "value"),
                   (10, "3", "value"), (11, "(batch, 10)", "prints")]


def test_claims_are_read_only_in_python_fences() -> None:
    doc = parse_text("# Ref\n\n```\n# Output layer\nfoo -> bar  # -> 3\n```\n\n"
                     "```python\nprint(2)  # prints: 2\n```\n")
    assert [len(b.claims) for b in doc.code_blocks] == [0, 1]


SKLEARN_SESSION = """# Goal
Recall the scikit-learn chapter.

# Notes
So, scikit-learn. We fit a model like this:

```python
from sklearn.linear_model import LinearRegression
model = LinearRegression()
model.fitt([[0.0], [1.0]], [0.0, 1.0])
```

🔴 => the method is `fit`, not `fitt`; as written this raises an AttributeError.
"""


def test_recalled_code_that_cannot_run_here_keeps_its_card_and_says_why(tmp_path: Path) -> None:
    """The mark asked for the card; the check says "not runnable here", never the missing
    package as the learner's error, and the build's summary counts it."""
    pytest.importorskip("torch")
    from ankigen.build import build
    from ankigen.checks import build_hook

    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "recall-sklearn.md").write_text(SKLEARN_SESSION)
    out = tmp_path / "deck.apkg"
    result = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert "1 on cards (1 run, 0 cached, 1 not runnable here)" in result.checks, result.checks
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        import_apkg(col, out)
        (card,) = [col.get_card(c) for c in col.find_cards("")]
        back, tags = _text(card.answer()), card.note().tags
    finally:
        col.close()
    assert "fitt" in back and "not runnable here" in back
    assert "needs sklearn, which is not installed here" in back
    assert "ankigen::check::not-run" in tags
