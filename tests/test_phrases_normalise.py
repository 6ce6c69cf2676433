"""phrases.normalise, the text a gap's identity (its GUID) is hashed from: lowercase \\w runs
joined by single spaces, exactly what substituting every run of other characters with a
space and splitting gave (identities must never change under a rewrite of it)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ankigen.phrases import normalise

_OTHER = re.compile(r"[^\w]+", re.UNICODE)


def _as_before(text: str) -> str:
    return " ".join(_OTHER.sub(" ", text.lower()).split())


def test_anchor_text():
    assert normalise("🟡 => Fine, but you SKIPPED torch.no_grad() (12.3)!") == (
        "fine but you skipped torch no_grad 12 3")
    assert normalise(" \t\u00a0—\n") == ""
    assert normalise("Ünïcödé ǅ ß İ x_y ٣") == "ünïcödé ǆ ß i x_y ٣"  # (İ: i + a mark)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_the_same_words_as_substituting_and_splitting(text):
    assert normalise(text) == _as_before(text)
