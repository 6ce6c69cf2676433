"""Note types and decks with fixed ids, per-note modification times, atomic write.

The package is genanki's format (its schema, `col` row and model and deck JSON, tested
equal), written without importing genanki: a third of a build's start-up went to it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import render
from .cards import BASIC_FIELDS, CLOZE_FIELDS
from .errors import OutputError
from .identity import ensure_folder, public_mode, short_id
from .model import Card

# Constants in [2^30, 2^31): Anki matches note types by id. Change the templates'
# text (and TEMPLATE_VERSION) rather than an id, or every note would be duplicated.
BASIC_MODEL_ID = 1_607_392_319
CLOZE_MODEL_ID = 1_607_392_320
ROOT_DECK_ID = 1_704_166_019
TEMPLATE_VERSION = 2

_BACK = """{{#Back}}<div class="back">{{Back}}</div>{{/Back}}
{{#Check}}<div class="check">{{Check}}</div>{{/Check}}
{{#WhatYouWrote}}<details class="wrote"><summary class="label">What you wrote</summary><div>{{WhatYouWrote}}</div></details>{{/WhatYouWrote}}
<div class="source">{{Source}}</div>"""

_LATEX_PRE = ("\\documentclass[12pt]{article}\n\\special{papersize=3in,5in}\n"
              "\\usepackage[utf8]{inputenc}\n\\usepackage{amssymb,amsmath}\n\\pagestyle{empty}\n"
              "\\setlength{\\parindent}{0in}\n\\begin{document}\n")
_LATEX_POST = "\\end{document}"


@dataclass(frozen=True, eq=False)
class NoteType:
    """One of our two note types, as genanki's `Model` describes it (the attributes a
    `genanki.Note` reads, and its JSON: tests/test_deck_anki.py compares them)."""

    FRONT_BACK = 0
    CLOZE = 1

    model_id: int
    name: str
    fields: tuple[dict[str, str], ...]
    templates: tuple[dict[str, str], ...]
    model_type: int
    # genanki's `Model._req`: which fields each card needs (computed by genanki from the
    # templates; fixed here because our templates are).
    req: tuple[tuple[int, str, tuple[int, ...]], ...]
    sort_field_index: int = 0
    latex_pre: str = _LATEX_PRE
    latex_post: str = _LATEX_POST

    @property
    def css(self) -> str:
        return render.css()  # made on first use (pygments, ~10 ms), not when deck.py loads

    @property
    def _req(self) -> list[list[Any]]:
        return [[o, how, list(fields)] for o, how, fields in self.req]

    def to_json(self, timestamp: float, deck_id: int) -> dict[str, Any]:
        """genanki's `Model.to_json`, key for key and in its order."""
        tmpls = [{**t, "ord": i, "bafmt": "", "bqfmt": "", "bfont": "", "bsize": 0, "did": None}
                 for i, t in enumerate(self.templates)]
        flds = [{**f, "ord": i, "font": "Liberation Sans", "media": [], "rtl": False,
                 "size": 20, "sticky": False} for i, f in enumerate(self.fields)]
        return {"css": self.css, "did": deck_id, "flds": flds, "id": str(self.model_id),
                "latexPost": self.latex_post, "latexPre": self.latex_pre, "latexsvg": False,
                "mod": int(timestamp), "name": self.name, "req": self._req,
                "sortf": self.sort_field_index, "tags": [], "tmpls": tmpls,
                "type": self.model_type, "usn": -1, "vers": []}


def _model(model_id: int, name: str, fields: tuple[str, ...], template: dict[str, str],
           req: tuple[tuple[int, str, tuple[int, ...]], ...],
           model_type: int = NoteType.FRONT_BACK) -> NoteType:
    return NoteType(model_id, name, tuple({"name": n} for n in fields), (template,), model_type,
                    req)


BASIC_MODEL = _model(BASIC_MODEL_ID, "ankigen basic", BASIC_FIELDS, {
    "name": "Gap", "qfmt": "{{Front}}", "afmt": '{{FrontSide}}<hr id="answer">' + _BACK},
    ((0, "all", (0,)),))
CLOZE_MODEL = _model(CLOZE_MODEL_ID, "ankigen cloze", CLOZE_FIELDS, {
    "name": "Cloze", "qfmt": "{{cloze:Text}}", "afmt": "{{cloze:Text}}" + _BACK},
    ((0, "all", (0, 1, 2, 3, 4)),), model_type=NoteType.CLOZE)

MODELS = {"basic": BASIC_MODEL, "cloze": CLOZE_MODEL}


@dataclass(frozen=True)
class DeckInfo:
    """A deck as the package's JSON names it (genanki's `Deck.to_json`, tested equal)."""

    deck_id: int
    name: str
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"collapsed": False, "conf": 1, "desc": self.description, "dyn": 0,
                "extendNew": 0, "extendRev": 50, "id": self.deck_id, "lrnToday": [163, 2],
                "mod": 1425278051, "name": self.name, "newToday": [163, 2],
                "revToday": [163, 0], "timeToday": [163, 23598], "usn": -1}


class _Writable(Protocol):
    def write_to_file(self, file: str, timestamp: float | None = None) -> None: ...


def deck_id(name: str) -> int:
    """Stable per deck name (Anki matches decks by name; the id only has to be stable)."""
    return ROOT_DECK_ID + zlib.crc32(name.encode("utf-8")) % (2**30)


_CLOZE_RE = re.compile(r"{{c(\d+)::.+?}}", re.DOTALL)


def card_ords(model: NoteType, fields: Sequence[str]) -> list[int]:
    """Which cards a note gets: genanki's rules (`Note.cards`), without a Note per row."""
    if model.model_type == NoteType.CLOZE:
        # Our cloze note type shows one field, Text, with {{cloze:Text}}.
        return sorted({int(m) - 1 for m in _CLOZE_RE.findall(fields[0]) if int(m) > 0})
    return [ord_ for ord_, any_or_all, required in _requirements(model)
            if (any if any_or_all == "any" else all)(fields[i] for i in required)]


def _ords_of(model: NoteType) -> Callable[[Sequence[str]], list[int]]:
    """`card_ords` for one model, its rules looked up once: a note type whose one card
    needs one field (ours) is a truth test per note, not a generator per requirement."""
    if model.model_type != NoteType.CLOZE:
        reqs = _requirements(model)
        if len(reqs) == 1 and len(reqs[0][2]) == 1:
            ord_, field_ = reqs[0][0], reqs[0][2][0]
            one: list[int] = [ord_]
            none_: list[int] = []
            return lambda fields: one if fields[field_] else none_
    return functools.partial(card_ords, model)


def _requirements(model: NoteType) -> tuple[tuple[int, str, tuple[int, ...]], ...]:
    return model.req


@dataclass(frozen=True)
class NoteRow:
    """One note as it goes into the package, stamped with the time its content last changed.

    genanki stamps every note with the package's one time, so every note looks newer on
    each import and Anki rewrites them all; with per-note times only changed notes update.
    """

    deck_id: int
    model: NoteType
    fields: tuple[str, ...]
    tags: tuple[str, ...]
    guid: str
    due: int
    mtime: int

    @classmethod
    def of(cls, deck_id: int, model: NoteType, fields: tuple[str, ...],
           tags: tuple[str, ...], guid: str, due: int, mtime: int) -> NoteRow:
        """`NoteRow(...)` for bulk use (see `identity._bare`): equal to it, and as frozen."""
        r = object.__new__(cls)
        r.__dict__.update(deck_id=deck_id, model=model, fields=fields, tags=tags, guid=guid,
                          due=due, mtime=mtime)
        return r


class VaultPackage:
    """genanki's package format (schema, collection, deck and model JSON) written in bulk.

    genanki re-reads and re-writes the collection's deck and model JSON once per deck
    (a vault has a deck per file, which made that quadratic) and inserts one row per
    `execute`; here the JSON is written once and notes and cards go in with `executemany`.
    `tests/test_deck_anki.py` checks the rows are the ones genanki's own notes would write.
    """

    def __init__(self, decks: Sequence[DeckInfo], notes: list[NoteRow],
                 media: Mapping[str, bytes] | None = None):
        self.decks = list(decks)
        self._rows: list[NoteRow] | None = notes
        self._cards: list[tuple[Card, int, int, int]] | None = None  # see of_cards
        self.media = dict(media or {})  # bare name → bytes (media.py names them)

    @classmethod
    def of_cards(cls, decks: Sequence[DeckInfo], cards: list[tuple[Card, int, int, int]],
                 media: Mapping[str, bytes] | None = None) -> VaultPackage:
        """(card, mtime, due, deck id) rows: written straight from the cards, with no
        NoteRow made per note (a vault's deck is written while its build waits)."""
        package = cls(decks, [], media)
        package._rows, package._cards = None, cards
        return package

    @classmethod
    def of_rows_ahead(cls, ahead: RowsAhead, cards: list[tuple[Card, int, int]],
                      media: Mapping[str, bytes] | None = None) -> VaultPackage:
        """`of_cards` with its rows made ahead (RowsAhead), for (card, mtime, due) rows."""
        package = cls(list(ahead.decks.values()), [], media)
        package._rows, package._triples, package._ahead = None, cards, ahead
        return package

    _triples: list[tuple[Card, int, int]] | None = None  # of_rows_ahead: the cards
    _ahead: RowsAhead | None = None

    def _card_list(self) -> list[tuple[Card, int, int, int]] | None:
        if self._cards is None and self._triples is not None:  # rows made ahead: not these
            self._cards = to_package(self._triples)._cards
        return self._cards

    @property
    def rows(self) -> list[NoteRow]:
        self._card_list()
        if self._rows is None:
            self._rows = [NoteRow.of(did, MODELS[c.model], c.fields, _tags(c), c.guid, due, mtime)
                          for c, mtime, due, did in self._cards or ()]
        return self._rows

    def write_to_file(self, file: str, timestamp: float | None = None) -> None:
        """genanki's layout (collection.anki2, a `media` map, one zip member per file),
        media taken from memory under their bare names, and the scratch database removed."""
        import sqlite3
        import zipfile

        fd, db = tempfile.mkstemp(suffix=".anki2")
        os.close(fd)
        try:
            conn = sqlite3.connect(db)
            try:
                stamp = time.time() if timestamp is None else timestamp
                self.write_to_db(conn.cursor(), stamp, itertools.count(int(stamp * 1000)))
                conn.commit()
            finally:
                conn.close()
            names = sorted(self.media)
            with zipfile.ZipFile(file, "w") as out:
                # What out.write(db, …) writes, from one read (it copies 8 KiB at a time)
                out.writestr(zipfile.ZipInfo.from_file(db, "collection.anki2"),
                             Path(db).read_bytes())
                out.writestr("media", json.dumps({str(i): n for i, n in enumerate(names)}))
                for i, name in enumerate(names):
                    out.writestr(str(i), self.media[name])
        finally:
            Path(db).unlink(missing_ok=True)

    def write_to_db(self, cursor: Any, timestamp: float, id_gen: Any) -> None:
        from .collection import COL, SCHEMA

        # A scratch database that is zipped and deleted: no journal, no fsync per statement
        # (genanki's schema script otherwise syncs the disk once per table and index).
        cursor.execute("PRAGMA journal_mode = OFF")
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute("PRAGMA page_size = 16384")
        cursor.execute("PRAGMA cache_size = -65536")
        # The indexes are built once the rows are in (one sort each, not an update per row).
        tables, indexes = SCHEMA.split("CREATE INDEX", 1)
        cursor.executescript(tables)
        cursor.executescript(COL)
        (decks_json,) = cursor.execute("SELECT decks FROM col").fetchone()
        (models_json,) = cursor.execute("SELECT models FROM col").fetchone()
        decks, models = json.loads(decks_json), json.loads(models_json)
        model_deck: dict[int, tuple[NoteType, int]] = {}
        ahead = self._ahead
        if ahead is not None and not ahead.fits(timestamp, len(self._triples or ())):
            ahead = None
        if ahead is not None:  # genanki: each model's JSON names the last deck that used it
            for name, did in ahead.model_deck.items():
                model_deck[MODELS[name].model_id] = (MODELS[name], did)
        elif (listed := self._card_list()) is not None:
            for c, _, _, did in listed:
                model_deck[MODELS[c.model].model_id] = (MODELS[c.model], did)
        else:
            for row in self.rows:
                model_deck[row.model.model_id] = (row.model, row.deck_id)
        for deck in self.decks:
            decks[str(deck.deck_id)] = deck.to_json()
        for model_id, (model, did) in model_deck.items():
            models[str(model_id)] = model.to_json(timestamp, did)
        cursor.execute("UPDATE col SET decks = ?, models = ?",
                       (json.dumps(decks), json.dumps(models)))
        if ahead is not None:
            notes, cards = ahead.notes, ahead.cards
        elif (listed := self._card_list()) is not None:
            notes, cards = _card_rows(listed, id_gen)
        else:
            notes, cards = self._note_rows(id_gen)
        # The columns every row has the same value in (usn -1, no checksum, flags or data;
        # a new card's scheduling) are written in the statement, not bound 10,000s of times.
        cursor.executemany("INSERT INTO notes VALUES(?,?,?,?,-1,?,?,?,0,0,'');", notes)
        cursor.executemany(
            "INSERT INTO cards VALUES(?,?,?,?,?,-1,0,0,?,0,0,0,0,0,0,0,0,'');", cards)
        cursor.executescript("CREATE INDEX" + indexes)

    def _note_rows(self, id_gen: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        notes, cards = [], []
        ords = {id(m): _ords_of(m) for m in MODELS.values()}
        for row in self.rows:
            model, fields, mtime = row.model, row.fields, row.mtime
            nid = next(id_gen)
            notes.append((nid, row.guid, model.model_id, mtime,
                          " " + " ".join(row.tags) + " ", "\x1f".join(fields),
                          fields[model.sort_field_index]))
            of = ords.get(id(model))
            for ord_ in (of(fields) if of is not None else card_ords(model, fields)):
                cards.append((next(id_gen), nid, row.deck_id, ord_, mtime, row.due))
        return notes, cards


def _card_rows(rows: list[tuple[Card, int, int, int]], id_gen: Any
               ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """`_note_rows`, the same rows in the same order, from (card, mtime, due, deck id)."""
    notes: list[tuple[Any, ...]] = []
    plan: list[tuple[int, int, list[int], list[int], int]] = []
    _notes_of(((c, mtime, did) for c, mtime, _, did in rows), id_gen, notes, plan)
    return notes, _cards_of(plan, [due for _, _, due, _ in rows])


_ORDS = {name: _ords_of(m) for name, m in MODELS.items()}
_SORT_FIELD = {name: m.sort_field_index for name, m in MODELS.items()}
_MODEL_ID = {name: m.model_id for name, m in MODELS.items()}


def _notes_of(rows: Iterable[tuple[Card, int, int]], id_gen: Iterator[int],
              notes: list[tuple[Any, ...]],
              plan: list[tuple[int, int, list[int], list[int], int]]) -> None:
    """The notes table's rows of (card, mtime, deck id), appended to `notes`, and what each
    note's cards need (note id, deck id, ords, card ids, mtime) to `plan`; a note's id and
    its cards' ids come from `id_gen` in that order, as genanki takes them."""
    for c, mtime, did in rows:
        fields = c.fields
        nid = next(id_gen)
        notes.append((nid, c.guid, _MODEL_ID[c.model], mtime, " " + " ".join(_tags(c)) + " ",
                      "\x1f".join(fields), fields[_SORT_FIELD[c.model]]))
        ords = _ORDS[c.model](fields)
        plan.append((nid, did, ords, [next(id_gen) for _ in ords], mtime))


def _cards_of(plan: list[tuple[int, int, list[int], list[int], int]], dues: list[int]
              ) -> list[tuple[Any, ...]]:
    """The cards table's rows: each note's cards (see `_notes_of`), due in new-card order."""
    return [(cid, nid, did, ord_, mtime, due)
            for (nid, did, ords, cids, mtime), due in zip(plan, dues, strict=True)
            for ord_, cid in zip(ords, cids, strict=True)]


class RowsAhead:
    """A package's rows made ahead, while a first build still parses (its identities are
    final as each file's cards arrive): its decks, notes and cards, and which deck each note
    type last saw, as `to_package` and `write_to_db` would make them at the end. Made for one
    package timestamp (note and card ids count from it, as genanki's do); the cards' due
    order is their arrival order, so they are only used if that is new-card order too."""

    def __init__(self, timestamp: int):
        self.timestamp = timestamp
        self._ids = itertools.count(int(timestamp * 1000))
        self.decks: dict[str, DeckInfo] = {}
        self.model_deck: dict[str, int] = {}  # model name → deck id of its last note
        self.notes: list[tuple[Any, ...]] = []
        self.cards: list[tuple[Any, ...]] = []
        self.in_order = True  # the cards came in sort-key order: due = arrival order
        self._last: tuple[str, int] | None = None

    def add(self, cards: Sequence[Card], mtime: int) -> None:
        """The next cards' rows, in deck order."""
        rows = []
        for c in cards:
            deck = self.decks.get(c.deck)
            if deck is None:
                deck = self.decks[c.deck] = DeckInfo(deck_id(c.deck), c.deck)
            self.model_deck[c.model] = deck.deck_id
            if self.in_order and self._last is not None and c.sort_key < self._last:
                self.in_order = False
            self._last = c.sort_key
            rows.append((c, mtime, deck.deck_id))
        plan: list[tuple[int, int, list[int], list[int], int]] = []
        first = len(self.notes)
        _notes_of(rows, self._ids, self.notes, plan)
        self.cards += _cards_of(plan, list(range(first, first + len(plan))))

    def fits(self, timestamp: float, notes: int) -> bool:
        """Whether these are the rows of a package of `notes` notes at `timestamp`."""
        return self.in_order and self.timestamp == timestamp and len(self.notes) == notes


def _tags(card: Card) -> tuple[str, ...]:
    return (*card.tags, f"ankigen::id::{short_id(card.guid)}")


def to_package(cards: Iterable[tuple[Card, int, int]],
               media: Mapping[str, bytes] | None = None,
               ahead: RowsAhead | None = None) -> VaultPackage:
    """(card, mtime, due) triples → a package with one deck per notes file, and the images
    its cards reference by bare name. `ahead`: these cards' rows, made while they were
    parsed (used if the package is written with the timestamp they were made for)."""
    if ahead is not None:
        return VaultPackage.of_rows_ahead(ahead, list(cards), media)
    decks: dict[str, DeckInfo] = {}
    rows: list[tuple[Card, int, int, int]] = []
    for card, mtime, due in cards:
        deck = decks.get(card.deck)
        if deck is None:
            deck = decks[card.deck] = DeckInfo(deck_id(card.deck), card.deck)
        rows.append((card, mtime, due, deck.deck_id))
    return VaultPackage.of_cards(list(decks.values()), rows, media)


def write_package(package: _Writable, out: Path, timestamp: float) -> None:
    """Write atomically: a temp file beside the target, then rename."""
    with writing_to(out) as tmp:
        package.write_to_file(str(tmp), timestamp=timestamp)


@contextlib.contextmanager
def writing_to(out: Path) -> Iterator[Path]:
    """A temp file beside `out` for a package to be written into (here, or by a forked
    writer): it replaces `out` when the block ends without an error, and is removed when
    not. An OSError on the way is one OutputError line naming `out`."""
    ensure_folder(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(out)) from None
    try:
        yield Path(tmp)
        os.chmod(tmp, public_mode())
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(out)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
