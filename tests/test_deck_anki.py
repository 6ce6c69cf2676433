"""Decks imported into a real Anki collection: identity, updates, history, orphans."""

from __future__ import annotations

import html
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered, review

from ankigen.build import build

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    shutil.copytree(FIXTURES / "vault", v)
    return v


@pytest.fixture
def col(tmp_path: Path):
    c = Collection(str(tmp_path / "collection.anki2"))
    yield c
    c.close()


def _build(vault: Path, out: Path, now: int):
    return build([vault], out, checks=None, now=now)


def _fields_by_guid(col: Collection) -> dict[str, list[str]]:
    return {col.get_note(n).guid: list(col.get_note(n).fields) for n in col.find_notes("")}


def test_every_card_renders_in_anki_and_reimport_changes_nothing(vault, col, tmp_path):
    out = tmp_path / "out" / "deck.apkg"
    result = _build(vault, out, now=1_000)
    assert result.notes == 10 and result.new == 10
    log = import_apkg(col, out)
    assert (log.new, log.updated) == (10, 0)
    cards = rendered(col)
    assert len(cards) == 10
    for _guid, q, a in cards:
        assert q.strip() and a.strip()
        assert "{{" not in q and "{{" not in a  # no template or cloze syntax leaks
    # The cloze whose answer holds `::` survives: the hidden term shows whole on the back.
    cloze = [a for _, q, a in cards if "[...]" in q and "torch" in a and "Module" in a]
    assert cloze and "torch::nn::Module" in html.unescape(cloze[0])
    # Same deck again: nothing new, nothing updated, no duplicate notes.
    log2 = import_apkg(col, out)
    assert (log2.new, log2.updated) == (0, 0)
    assert col.note_count() == 10


def test_edit_one_gap_updates_one_note_and_keeps_its_review(vault, col, tmp_path):
    out = tmp_path / "deck.apkg"
    _build(vault, out, now=1_000)
    import_apkg(col, out)
    before = _fields_by_guid(col)
    guid = next(g for g, f in before.items() if "padding and stride" in f[0])
    cid = review(col, guid)
    reps = col.get_card(cid).reps
    assert reps == 1

    notes = vault / "recall-cnn.md"
    notes.write_text(notes.read_text().replace(
        "fine, but you skipped padding and stride.",
        "fine, but you skipped padding and the stride."))
    result = _build(vault, out, now=2_000)
    assert (result.new, result.changed) == (0, 1)
    assert result.parsed == 1  # the other file came from the parse cache
    log = import_apkg(col, out)
    assert (log.new, log.updated) == (0, 1)
    after = _fields_by_guid(col)
    assert set(after) == set(before)
    assert "the stride" in after[guid][0]
    assert col.get_card(cid).reps == reps  # review history kept
    assert {g: f for g, f in after.items() if g != guid} == \
        {g: f for g, f in before.items() if g != guid}


def test_insert_gap_at_top_adds_one_note_and_moves_nothing(vault, col, tmp_path):
    out = tmp_path / "deck.apkg"
    _build(vault, out, now=1_000)
    import_apkg(col, out)
    before = _fields_by_guid(col)
    reviewed = {g: review(col, g) for g in list(before)[:3]}

    notes = vault / "recall-cnn.md"
    text = notes.read_text()
    text = text.replace("# Notes\n\n", "# Notes\n\nStrides I don't remember at all.\n\n", 1)
    notes.write_text(text)
    result = _build(vault, out, now=2_000)
    assert (result.new, result.changed) == (1, 0)
    log = import_apkg(col, out)
    assert (log.new, log.updated) == (1, 0)
    after = _fields_by_guid(col)
    assert len(after) == len(before) + 1
    for g, fields in before.items():
        assert after[g] == fields  # every other card keeps its content
    for cid in reviewed.values():
        assert col.get_card(cid).reps == 1


def test_deleted_gap_is_reported_with_a_search_that_finds_it(vault, col, tmp_path):
    out = tmp_path / "deck.apkg"
    _build(vault, out, now=1_000)
    import_apkg(col, out)
    notes = vault / "recall-cnn.md"
    notes.write_text(notes.read_text().replace(
        "The weight decay trick I don't remember at all.\n", ""))
    result = _build(vault, out, now=2_000)
    assert len(result.orphans) == 1
    orphan = result.orphans[0]
    assert orphan.file == "recall-cnn.md" and "weight decay" in orphan.anchor
    found = col.find_notes(orphan.search)
    assert len(found) == 1
    assert "weight decay" in col.get_note(found[0]).fields[0]
    log = import_apkg(col, out)
    assert (log.new, log.updated) == (0, 0)
    assert col.note_count() == 10  # Anki never deletes on import


def test_fresh_clone_gives_same_guids_and_new_part_break_changes_none(vault, col, tmp_path):
    out = tmp_path / "a.apkg"
    first = {c.anchor: c.guid for c in _cards(vault, out)}
    assert import_apkg(col, out).new == 10
    clone = tmp_path / "clone"
    shutil.copytree(vault, clone, ignore=shutil.ignore_patterns(".ankigen"))
    assert {c.anchor: c.guid for c in _cards(clone, tmp_path / "b.apkg")} == first
    log = import_apkg(col, tmp_path / "b.apkg")
    assert (log.new, log.updated) == (0, 0)
    # A new `---` splits a part: no GUID changes, with or without the manifest.
    for v in (vault, clone):
        notes = v / "recall-cnn.md"
        notes.write_text(notes.read_text().replace(
            "A pooling layer shrinks", "---\n\nA pooling layer shrinks"))
        shutil.rmtree(v / ".ankigen", ignore_errors=(v == clone))
    assert {c.anchor: c.guid for c in _cards(clone, tmp_path / "c.apkg")} == first
    assert {c.anchor: c.guid for c in _cards(vault, tmp_path / "d.apkg")} == first
    assert import_apkg(col, tmp_path / "c.apkg").new == 0
    assert col.note_count() == 10


def test_renamed_file_keeps_its_notes(vault, col, tmp_path):
    out = tmp_path / "deck.apkg"
    _build(vault, out, now=1_000)
    import_apkg(col, out)
    before = set(_fields_by_guid(col))
    (vault / "recall-cnn.md").rename(vault / "ch12-cnn-recall.md")
    result = _build(vault, out, now=2_000)
    assert result.new == 0 and not result.orphans
    log = import_apkg(col, out)
    assert log.new == 0
    assert set(_fields_by_guid(col)) == before


def test_unchanged_rebuild_writes_nothing(vault, tmp_path):
    out = tmp_path / "deck.apkg"
    first = _build(vault, out, now=1_000)
    stamp = out.stat().st_mtime_ns
    again = _build(vault, out, now=2_000)
    assert first.written and not again.written
    assert again.parsed == 0 and again.unchanged == first.notes
    assert out.stat().st_mtime_ns == stamp
    assert zipfile.is_zipfile(out)
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == first.notes
    finally:
        col.close()


def _cards(vault: Path, out: Path):
    from ankigen.deck import to_package  # noqa: F401  (the deck is built too)

    result = build([vault], out, now=1_000)
    import json

    manifest = json.loads((vault / ".ankigen" / "manifest.json").read_text())
    assert len(manifest["notes"]) == result.notes

    class C:
        def __init__(self, e):
            self.anchor, self.guid = e["anchor"], e["guid"]

    return [C(e) for e in manifest["notes"]]


def _rows(apkg: Path, tmp_path: Path) -> dict[str, list]:
    import sqlite3

    with zipfile.ZipFile(apkg) as z:
        z.extract("collection.anki2", tmp_path / apkg.stem)
    con = sqlite3.connect(tmp_path / apkg.stem / "collection.anki2")
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()  # noqa: S608
                for t in ("notes", "cards", "col")}
    finally:
        con.close()


def test_bulk_writer_writes_the_rows_genanki_notes_would(vault, tmp_path):
    """The deck writer skips genanki's Note objects for speed; the package must not change."""
    import genanki

    from ankigen.deck import write_package

    out = tmp_path / "ours.apkg"
    build([vault], out, checks=None, now=1_000)
    notes = vault / "recall-cnn.md"  # a second build: notes with different times
    notes.write_text(notes.read_text().replace("padding and stride", "padding and the stride"))
    build([vault], out, checks=None, now=2_000)
    package = _last_package(vault)
    rows = package.rows
    assert len(rows) == 10 and {r.mtime for r in rows} == {1_000, 2_000}

    class Stamped(genanki.Note):
        def write_to_db(self, cursor, timestamp, deck_id, id_gen):
            super().write_to_db(cursor, self.mtime, deck_id, id_gen)

    decks = {d.deck_id: genanki.Deck(d.deck_id, d.name) for d in package.decks}
    for r in rows:
        note = Stamped(model=r.model, fields=list(r.fields), tags=list(r.tags), guid=r.guid,
                       due=r.due)
        note.mtime = r.mtime
        decks[r.deck_id].add_note(note)
    theirs = tmp_path / "theirs.apkg"
    write_package(genanki.Package(list(decks.values())), theirs, timestamp=2_000)
    a, b = _rows(out, tmp_path), _rows(theirs, tmp_path)
    assert a["notes"] == b["notes"] and len(a["notes"]) == 10
    assert a["cards"] == b["cards"] and len(a["cards"]) == 10
    for i in (9, 10):  # the collection's models and decks JSON
        assert json.loads(a["col"][0][i]) == json.loads(b["col"][0][i])
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == 10 and len(rendered(col)) == 10
    finally:
        col.close()


def _last_package(vault: Path):
    """The package the last build wrote, rebuilt from its manifest and cards."""
    from ankigen.build import ParseCache, discover, parse_all, read_all
    from ankigen.cards import card_for
    from ankigen.deck import to_package
    from ankigen.identity import load

    root, files = discover([vault])
    parsed, _ = parse_all(read_all(files, False), ParseCache(root, enabled=False), False)
    docs = [p.doc() for p in parsed]
    ids = {(e.file, e.anchor): (e.guid, e.mtime, e.ordinal) for e in load(root)}
    triples = []
    for doc in docs:
        for i, g in enumerate(doc.gaps):
            c = card_for(g, doc, i)
            guid, mtime, _ = ids[(c.file, c.anchor)]
            triples.append((c.__class__(**{**c.__dict__, "guid": guid}), mtime, len(triples)))
    return to_package(triples)


def _one_file_into_anki(tmp_path, col, text: str, notes: int) -> list[tuple[str, str, str]]:
    """`text` as a one-file vault, built without checks and imported: its cards rendered."""
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "notes.md").write_text(text, encoding="utf-8")
    out = tmp_path / "notes.apkg"
    assert build([vault], out, checks=None, now=1_000).notes == notes
    assert import_apkg(col, out).new == notes
    return rendered(col)


def test_learner_markdown_renders_on_the_card(tmp_path, col):
    shown = _one_file_into_anki(tmp_path, col, (
        "# Notes\n\nSo, modules. Every `nn.Module` keeps its **parameters** in a dict.\n"
        "The C++ class `torch::nn::Module` has a twin I forgot the name of => the name is "
        "`torch::nn::Cloneable`\n\n"
        "🟡 => you skipped the *buffers*.\n"), notes=2)
    cards = {q.split("</style>")[-1]: a for _, q, a in shown}
    yellow = next(q for q in cards if "what about" in q)
    assert "what about <em>buffers</em>?" in yellow
    assert "<code>nn.Module</code>" in cards[yellow] and "**" not in cards[yellow]
    cloze = next(q for q in cards if "[...]" in q)
    assert "<code>torch::nn::Module</code>" in cloze and "`" not in cloze
    assert "torch::nn::Cloneable" in html.unescape(cards[cloze])  # the hidden term, whole


def test_a_back_in_the_tutors_lowercase_starts_its_sentence_with_a_capital(tmp_path, col):
    shown = _one_file_into_anki(tmp_path, col, (
        "# Notes\n\nSo, distances. Manhattan distance is the square root of the sum of the "
        "absolute differences.\n\n🔴 => Manhattan is wrong.\n=> there is no square root: it "
        "is just the sum.\n\n---\n\nSo, modules. To freeze a layer I set something on its "
        "weights.\n\n🟡 => which flag?\n=> requires_grad=False on each parameter.\n"), notes=2)
    backs = " ".join(a for _, _, a in shown)
    assert "There is no square root: it is just the sum." in backs
    assert "requires_grad=False on each parameter." in backs  # a code name stays as written
    assert "Requires_grad" not in backs


def test_the_package_format_is_genankis_without_importing_it():
    """deck.py writes genanki's format from its own copy (a build no longer imports
    genanki): the schema, the `col` row, each note type's JSON and card rules, and the deck
    JSON must stay the ones genanki gives."""
    import subprocess
    import sys

    import genanki
    from genanki.apkg_col import APKG_COL
    from genanki.apkg_schema import APKG_SCHEMA

    from ankigen import collection, render
    from ankigen.deck import MODELS, DeckInfo

    assert collection.SCHEMA == APKG_SCHEMA and collection.COL == APKG_COL
    for ours in MODELS.values():
        theirs = genanki.Model(ours.model_id, ours.name,
                               fields=[{"name": f["name"]} for f in ours.fields],
                               templates=[dict(t) for t in ours.templates], css=render.css(),
                               model_type=ours.model_type, sort_field_index=0)
        assert ours._req == theirs._req, ours.name
        for stamp, did in ((1_000.7, 5), (2_000, 1_704_166_019)):
            assert json.dumps(ours.to_json(stamp, did)) == json.dumps(theirs.to_json(stamp, did))
    assert json.dumps(DeckInfo(7, "ankigen::ch1::recall").to_json()) == \
        json.dumps(genanki.Deck(7, "ankigen::ch1::recall").to_json())
    probe = "import sys, ankigen.build; print('genanki' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout == "False\n"
