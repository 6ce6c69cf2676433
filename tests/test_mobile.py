"""Cards on a 360 px phone in light and night mode, rendered by Anki, measured in Chromium.

Every card of a vault (checks run, deck imported into a real collection, card.question()
and card.answer() with the note type's CSS) is loaded at 360 px, light and night, and the
page itself is measured (docs/screenshots.py: MEASURE): contrast of every element that
holds text, code tokens included, against the background it is painted on; text-transform;
<pre> that scrolls; the answer side's height with its <details> closed.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from browser import launch, require_chromium

from ankigen import layout, render

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "docs"))

MODES = (("light", "card"), ("night", "card nightMode night_mode"))
SCREEN = 640  # px of answer side a 360 px phone shows at once
AA = 4.5


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> list[dict[str, Any]]:
    """One row per card, side and mode: what MEASURE found in the page."""
    require_chromium()
    pytest.importorskip("torch")
    from playwright.sync_api import sync_playwright
    from screenshots import MEASURE, PAGE, rendered_cards

    tmp = tmp_path_factory.mktemp("mobile")
    vault = tmp / "vault"
    vault.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "checks" / "recall-pytorch-training.md", vault)
    shutil.copy(ROOT / "tests" / "fixtures" / "mobile" / "recall-long-answers.md", vault)
    cards = rendered_cards(vault, tmp)
    rows = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        for i, (question, answer) in enumerate(cards):
            for side, html in (("question", question), ("answer", answer)):
                for mode, cls in MODES:
                    page.set_content(PAGE.format(cls=cls, html=html))
                    rows.append({"card": i, "side": side, "mode": mode, "html": html,
                                 "question": question, **page.evaluate(MEASURE)})
        browser.close()
    return rows


@pytest.mark.browser
def test_the_measured_cards_cover_every_kind(measured):
    answers = [r["html"] for r in measured if r["side"] == "answer" and r["mode"] == "light"]
    assert len(answers) >= 8
    assert any("{{c1::" not in a and "cloze" in a for a in answers)  # a cloze card
    assert any('class="check"' in a for a in answers)
    assert any('class="output"' in a and "Error" in a for a in answers)  # a failing call's error
    assert any('class="unanswered"' in a for a in answers)
    for r in measured:
        assert "style=" not in r["html"].split("</style>")[-1]  # classes, never inline colours


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["light", "night"])
def test_every_text_reads_at_4_5_to_1_on_its_own_background(measured, mode):
    rows = [r for r in measured if r["mode"] == mode]
    texts = [(t, r["card"], r["side"]) for r in rows for t in r["texts"]]
    assert sum(t["code"] for t, _, _ in texts) > 20  # pygments tokens are measured too
    assert {"label", "where", "output"} <= {c for t, _, _ in texts for c in t["cls"].split()}
    low = [(round(t["ratio"], 2), t["cls"], t["text"], card, side)
           for t, card, side in texts if t["ratio"] < AA]
    assert not low, low
    # the card paints its own background; contrast was measured against it
    want = render.LIGHT_BG if mode == "light" else render.NIGHT_BG
    rgb = tuple(int(want[i:i + 2], 16) for i in (1, 3, 5))
    assert {r["background"] for r in rows} == {f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})"}


@pytest.mark.browser
def test_no_text_transform_so_code_names_show_as_written(measured):
    for r in measured:
        assert r["transforms"] == [], (r["card"], r["transforms"])
    labels = [t for r in measured for t in r["texts"] if "label" in t["cls"].split()]
    assert labels
    for t in labels:  # what is shown (innerText) is what the note says (textContent)
        assert t["shown"] == t["text"][:len(t["shown"])], t


@pytest.mark.browser
def test_check_output_and_errors_wrap_on_a_phone(measured):
    pres = [(p, r["card"]) for r in measured for p in r["pres"]]
    assert any("Error" in p["text"] for p, _ in pres if p["cls"] == "output")
    for p, card in pres:
        assert p["scroll"] <= p["client"], (card, p)  # nothing hidden to the right
        assert p["right"] <= 360, (card, p)
        assert p["whiteSpace"] == "pre-wrap", (card, p)
    for r in measured:
        assert r["width"] <= 360, (r["card"], r["side"], r["width"])


@pytest.mark.browser
def test_a_back_taller_than_a_screen_folds_the_rest_at_a_sentence_end(measured):
    answers = [r for r in measured if r["side"] == "answer"]
    folded = [r for r in answers if "more" in r["details"]]
    assert folded  # the fixture has answers longer than a screen: the rule is exercised
    for r in answers:
        assert r["closedHeight"] <= SCREEN, (r["card"], r["mode"], r["closedHeight"])
    for r in folded:
        assert r["openHeight"] > SCREEN  # it would not have fitted
        assert re.search(r"[.!?…][\"”')]?$", r["visibleBack"]), r["visibleBack"]
        rest = r["back"][len(r["visibleBack"]):]
        assert rest.strip().startswith("The rest of the answer")
        assert len(rest) > 40  # the rest is there, one tap away
    assert all("<script" not in r["html"] for r in answers)  # no JavaScript


@pytest.mark.browser
def test_what_you_wrote_never_repeats_the_front(measured):
    shown = [r for r in measured if r["side"] == "answer" and r["mode"] == "light" and r["wrote"]]
    assert shown
    for r in shown:
        front = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r["question"].split("</style>")[-1]))
        words = r["wrote"].replace("…", " ").split()
        runs = {" ".join(words[i:i + layout.REPEAT_RUN])
                for i in range(len(words) - layout.REPEAT_RUN + 1)}
        assert not [run for run in runs if run in front], (r["card"], r["wrote"])


# The layout rules themselves, without a browser.

def _para(n: int) -> str:
    return "<p>" + " ".join(f"Sentence number {i} says something about training." for i in range(n)) + "</p>"


def test_fit_leaves_a_card_that_fits_alone():
    back = _para(2)
    assert layout.fit('<div class="front">Q?</div>', back, "", "src", "") == (back, "", "")


def test_fit_cuts_a_long_answer_at_a_sentence_end_and_keeps_the_rest():
    back = _para(40)
    out, _, _ = layout.fit('<div class="front">Q?</div>', back, "", "src", "")
    head, _, tail = out.partition(layout.MORE)
    assert tail.endswith("</details>")
    assert head.endswith("training.</p>") and tail.startswith("<p>Sentence number")
    text = re.sub(r"<[^>]+>", " ", out.replace("<summary>The rest of the answer</summary>", ""))
    assert text.split() == re.sub(r"<[^>]+>", " ", back).split()  # nothing lost
    assert layout.height(head) <= SCREEN


def test_fit_never_cuts_inside_a_list_or_code():
    items = "".join(f"<li>Point {i} about optimizers and their state.</li>" for i in range(30))
    back = f"<p>First.</p><ul>\n{items}\n</ul>"
    out, _, _ = layout.fit('<div class="front">Q?</div>', back, "", "src", "")
    head, _, tail = out.partition(layout.MORE)
    assert head == "<p>First.</p>" and tail.startswith("<ul>")


def test_fit_folds_the_checks_code_before_cutting_the_answer():
    check = (f'<div class="label">Check</div>{layout.CHECK_CODE_OPEN}<summary>The code it ran'
             "</summary><pre>" + "x = 1\n" * 30 + "</pre></details><pre class=\"output\">ok</pre>")
    back = _para(3)
    out, _, folded = layout.fit('<div class="front">Q?</div>', back, "", "src", check)
    assert out == back and layout.CHECK_CODE_OPEN not in folded
    assert '<details class="check-code">' in folded


def test_what_you_wrote_that_repeats_the_front_is_dropped():
    said = "You can upload tensors onto the gpu and run computations there which is faster"
    front = f'<div class="front">GPUs — you wrote: “{said}.” What is missing or wrong here?</div>'
    assert layout.fit(front, "<p>A.</p>", f"…numpy uses 64 bits. {said}.", "s", "")[1] == ""
    assert layout.fit(front, "<p>A.</p>", "Momentum keeps a running direction.", "s", "")[1]
    assert not layout.repeats("What's the other quirk? You should avoid in place operations "
                              "that could save you memory, like x+=1",
                              "Two quirks of autograd. What's the other quirk?")
