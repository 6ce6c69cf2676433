"""The bulk constructors (`Gap.of`, `Card.of`, `Assessment.of`, `Block.of`) make the very
objects the dataclass constructors make: equal, same repr and hash, byte-identical pickles
(the parse cache and the workers' results are pickles), and as frozen."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from ankigen.blocks import Block
from ankigen.model import Assessment, Card, Gap, GapKind, Mark, Span

SPAN = Span(3, 5)
GAP = dict(kind=GapKind.FORGOT_NAME, mark=None, line=4, span=SPAN, part=1, topic="Optimizers",
           chapter="7", section="Notes", prompt="The name is […].", context="I forgot it",
           answer="The name is Adam.", answer_source="inline", cloze="The name is \ue000.",
           term="Adam", code=None, anchor="forgot_name i forgot it")
CARD = dict(guid="b~0]xr!4Vq", model="cloze", deck="ankigen::ch07::recall", fields=(
    "<div>The name is {{c1::Adam}}.</div>", "", "I forgot it", "<span>recall.md</span>", ""),
    tags=("ankigen::file::recall", "ankigen::kind::forgot_name"), sort_key=("ch07/recall.md", 2),
    anchor="forgot_name i forgot it", file="ch07/recall.md", content_hash="0123456789abcdef",
    mark="unmarked", gap=None)
ASSESSMENT = dict(mark=Mark.YELLOW, line=9, feedback="fine, but you skipped dropout",
                  corrections=("it is p=0.5",), followups=("=> scaled at train time",),
                  quote="The book says so.", question=None, judged=SPAN, inline=False)
BLOCK = dict(kind="fence", start=12, end=14, text="x = 1", level=0, info="python", items=())


@pytest.mark.parametrize(("cls", "values"), [
    (Gap, GAP), (Card, CARD), (Assessment, ASSESSMENT), (Block, BLOCK),
    (Card, {**CARD, "gap": Gap(**GAP)})])
def test_of_makes_what_the_constructor_makes(cls, values):
    made, bulk = cls(**values), cls.of(**values)
    assert type(bulk) is cls and bulk == made and repr(bulk) == repr(made)
    assert hash(bulk) == hash(made)
    assert pickle.dumps(bulk, protocol=pickle.HIGHEST_PROTOCOL) == pickle.dumps(
        made, protocol=pickle.HIGHEST_PROTOCOL)
    assert list(bulk.__dict__) == [f.name for f in dataclasses.fields(cls)]  # (pickle order)
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(bulk, first, values[first])


@pytest.mark.parametrize("cls", [Gap, Card, Assessment, Block])
def test_of_takes_every_field_with_the_same_defaults(cls):
    """A field added to the dataclass and not to `of` would leave its objects without it."""
    params = inspect.signature(cls.of).parameters
    fields = dataclasses.fields(cls)
    assert list(params) == [f.name for f in fields]
    for f in fields:
        default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        assert params[f.name].default == default, f.name


def test_defaults_left_out_are_filled_in():
    required = {k: v for k, v in GAP.items() if k not in ("cloze", "term", "code", "anchor")}
    assert Gap.of(**required) == Gap(**required)
    assert Gap.of(**required).__dict__ == Gap(**required).__dict__
