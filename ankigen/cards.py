"""Gap → card fields and tags. No identity here: identity.py assigns GUIDs."""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import PurePosixPath

from . import layout, render, topics
from .model import Card, CheckOutput, Document, Gap, GapKind, Mark
from .parse import CLOZE_SLOT

BASIC_FIELDS = ("Front", "Back", "WhatYouWrote", "Source", "Check")
CLOZE_FIELDS = ("Text", "Back", "WhatYouWrote", "Source", "Check")
UNANSWERED = ("Your notes hold no answer for this yet: look it up and add it under the mark "
              "(or let the grader fill it in), then rebuild.")
_TAG_BAD = re.compile(r"[^\w:.\-]+")


@functools.cache
def deck_name(path: str) -> str:
    """`ankigen::<file>` following the vault's folders: `ch10/recall.md` → `ankigen::ch10::recall`."""
    p = PurePosixPath(path.replace("\\", "/"))
    parts = [s for s in p.with_suffix("").parts if s not in ("", ".", "..", "/")]
    return "::".join(["ankigen", *parts]) if parts else "ankigen"


@functools.cache
def tag(*parts: str) -> str:
    return "::".join(_TAG_BAD.sub("_", p.strip()).strip("_") for p in parts if p.strip())


def tags_for(gap: Gap, path: str, check: CheckOutput | None = None) -> tuple[str, ...]:
    return _tags(gap.mark.value if gap.mark else "unmarked", gap.kind.value, _stem(path),
                 gap.chapter or "", gap.unanswered,
                 "" if check is None else "ok" if check.status == "ok" else
                 "not-run" if check.status in ("not run", "not runnable here") else "failed")


@functools.lru_cache(maxsize=4096)  # a vault's cards share a handful of tag sets
def _tags(mark: str, kind: str, stem: str, chapter: str, unanswered: bool,
          check: str) -> tuple[str, ...]:
    out = [tag("ankigen", mark), tag("ankigen", "kind", kind), tag("ankigen", "file", stem)]
    if chapter:
        out.append(tag("ankigen", "chapter", chapter))
    if unanswered:
        out.append(tag("ankigen", "unanswered"))
    if check:
        out.append(tag("ankigen", "check", check))
    return tuple(sorted(set(out)))


@functools.cache
def _stem(path: str) -> str:
    return PurePosixPath(path).stem


@functools.cache
def _name(path: str) -> str:
    return PurePosixPath(path).name


def source_html(gap: Gap, path: str) -> str:
    return _source_html(_name(path), gap.section, gap.topic, gap.chapter or "")


@functools.lru_cache(maxsize=4096)  # the same for every gap of a part
def _source_html(name: str, section: str, topic: str, chapter: str) -> str:
    # No line numbers: moving unrelated text must not change a note.
    where = topics.source_trail(name, section, topic)  # each once, no raw `**`
    chapter = f" · chapter {chapter}" if chapter else ""
    return f'<span class="where">{render.plain_math(where)}{chapter}</span>'


def check_html(check: CheckOutput | None) -> str:
    if check is None:
        return ""
    ok = check.status == "ok"
    status = "ran cleanly" if ok else check.status
    title = f'<div class="label">{render.plain(check.title or "Runnable check")}</div>'
    if check.status == "not run":  # refused (no sandbox): no torch, no device, no output
        return (f'{title}{_check_code(check)}<div class="label status-fail">not run</div>'
                f'<pre class="output">{render.plain(check.output.rstrip())}</pre>')
    meta = (f'<div class="label status-{"ok" if ok else "fail"}">{render.plain(status)} · '
            f"torch {render.plain(check.torch_version)} · {render.plain(check.device)} · "
            "output recorded at build</div>")
    output = f'<pre class="output">{render.plain(check.output.rstrip()) or "(no output)"}</pre>'
    return f"{title}{_check_code(check)}{meta}{output}"


def _check_code(check: CheckOutput) -> str:
    """The check's code, open; `layout.fit` closes it when the card is taller than a phone."""
    return (f'{layout.CHECK_CODE_OPEN}<summary>The code it ran</summary>'
            f"{render.code(check.code)}</details>")


# A back that opens with a plain lowercase word ("there is no square root: …", the tutor's
# quick `=>` line) starts its sentence with a capital on the card; a code name ("nn.Linear",
# "retain_graph=True", "model.eval()") is left as written.
_LOWER_START = re.compile(r"[a-z]{2,}(?=[\s,;:!?]|$)")


def _sentence_case(answer: str) -> str:
    return answer[:1].upper() + answer[1:] if _LOWER_START.match(answer) else answer


def _answer_html(gap: Gap, footnotes: tuple[tuple[str, str], ...] = ()) -> str:
    if gap.unanswered:
        return f'<div class="unanswered">{render.plain(UNANSWERED)}</div>'
    assert gap.answer is not None
    return render.markdown(_sentence_case(gap.answer), dict(footnotes) if footnotes else None)


def _cloze_text(gap: Gap) -> str:
    assert gap.cloze is not None and gap.term is not None
    before, _, after = gap.cloze.partition(CLOZE_SLOT)
    topic = f'<div class="topic">{render.escape_cloze_text(render.inline(gap.topic))}</div>'
    return (topic + render.escape_cloze_text(render.inline(before))
            + "{{c1::" + render.cloze_term(gap.term) + "}}"
            + render.escape_cloze_text(render.inline(after)))


def card_for(gap: Gap, doc: Document, ordinal: int, check: CheckOutput | None = None,
             guid: str = "", *, keep_gap: bool = True) -> Card:
    """The card for one gap. `keep_gap=False` leaves the gap off (smaller to send and cache)."""
    path = doc.path
    wrote = render.inline(gap.context) if gap.context else ""
    if gap.cloze and gap.term:
        model = "cloze"
        fields = (_cloze_text(gap), "", wrote, source_html(gap, path), check_html(check))
    else:
        model = "basic"
        front = f'<div class="front">{render.inline(gap.prompt)}</div>'
        if gap.kind is GapKind.WRONG_CODE and gap.code:
            front += render.code(gap.code)
        fields = (front, _answer_html(gap, doc.footnotes), wrote, source_html(gap, path),
                  check_html(check))
    back, wrote, checked = layout.fit(fields[0], *fields[1:])  # one phone screen
    fields = (fields[0], back, wrote, fields[3], checked)
    tags = tags_for(gap, path, check)
    deck = deck_name(path)
    digest = hashlib.sha256("\x1f".join((model, deck, *fields, *tags)).encode()).hexdigest()[:16]
    return Card.of(guid=guid, model=model, deck=deck, fields=fields, tags=tags,
                   sort_key=(path, ordinal), anchor=gap.anchor, file=path, content_hash=digest,
                   mark=gap.mark.value if gap.mark else "unmarked", gap=gap if keep_gap else None)


def wanted(gap: Gap, include_green: bool) -> bool:
    return include_green or gap.mark is not Mark.GREEN or gap.kind is not GapKind.ASSESSMENT
