"""A vault's first plain build (no manifest yet) gives its cards their identities, and the
deck its note rows, as each file's cards arrive from the parse (build._FirstBuild): the
same GUIDs, deck and manifest as `identity.assign` after the parse gives, repeated anchors
(a GUID another card of the file already took) included."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered

import ankigen.build
from ankigen.build import PARALLEL_FROM, build

FIXTURES = Path(__file__).parent / "fixtures"
CNN = FIXTURES / "vault" / "recall-cnn.md"  # 10 gaps
TWICE = """# Notes

So, chapter 3 is about autograd. Gradients flow back through the graph.

🔴 => wrong, they accumulate.

---

So, chapter 3 is about autograd. Gradients flow back through the graph.

🔴 => wrong, they accumulate.
"""  # two parts, one gap each, with the same anchor: the second GUID is counted on


def _vault(where: Path, files: int, spaced: bool = False) -> Path:
    vault = where / "vault"
    (vault / "sub").mkdir(parents=True)
    for n in range(files):
        shutil.copy(CNN, vault / f"cnn-{n:03d}.md")
    (vault / "sub" / "twice.md").write_text(TWICE, encoding="utf-8")
    if spaced:  # found after sub/ (folder by folder), but sorts before it: "sub b/" < "sub/"
        (vault / "sub b").mkdir()
        shutil.copy(CNN, vault / "sub b" / "cnn.md")
    return vault


def _deck(deck: Path, tmp_path: Path) -> tuple[bytes, dict[str, list[tuple[object, ...]]]]:
    with zipfile.ZipFile(deck) as z:
        data = z.read("collection.anki2")
    db = tmp_path / f"{deck.stem}.anki2"
    db.write_bytes(data)
    con = sqlite3.connect(db)
    try:
        return data, {t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
                      for t in ("notes", "cards", "col")}
    finally:
        con.close()


@pytest.mark.parametrize(("files", "spaced"), [
    (3, False),  # parsed in this process alone
    (PARALLEL_FROM, False),  # by the forks too
    (PARALLEL_FROM, True),  # cards that do not arrive in new-card order
])
def test_a_first_build_assigns_what_assign_would(tmp_path, monkeypatch, files, spaced):
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[int] = []
    real_assign = ankigen.build.assign

    def counted(wanted, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(wanted))
        return real_assign(wanted, *args, **kwargs)

    monkeypatch.setattr(ankigen.build, "assign", counted)
    early = build([_vault(tmp_path / "a", files, spaced)], tmp_path / "early.apkg", now=1_000)
    assert calls == []  # every identity came as the files arrived
    monkeypatch.setattr(ankigen.build._FirstBuild, "complete", lambda self, parsed: False)
    after = build([_vault(tmp_path / "b", files, spaced)], tmp_path / "after.apkg", now=1_000)
    assert calls == [after.notes]  # assign, after the parse, as before
    assert early.notes == after.notes == (files + spaced) * 10 + 2 and early.new == early.notes
    data, rows = _deck(tmp_path / "early.apkg", tmp_path)
    assert (data, rows) == _deck(tmp_path / "after.apkg", tmp_path)  # the database, byte for byte
    guids = [row[1] for row in rows["notes"]]
    assert len(set(guids)) == len(guids)  # the repeated anchor got a GUID of its own
    assert ((tmp_path / "a/vault/.ankigen/manifest.json").read_bytes()
            == (tmp_path / "b/vault/.ankigen/manifest.json").read_bytes())
    stamps = json.loads((tmp_path / "cache" / "outputs.json").read_text("utf-8"))
    fingerprints = {Path(k).name: v["deck"][0] for k, v in stamps.items()}
    assert fingerprints["early.apkg"] == fingerprints["after.apkg"]  # the next build's test
    assert (early.by_mark, early.new) == (after.by_mark, after.new)
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "early.apkg").new == early.notes
        cards = rendered(col)
        assert sorted(g for g, _, _ in cards) == sorted(guids)
        assert all('class="source"' in answer for _, _, answer in cards)
    finally:
        col.close()


def test_a_build_with_a_manifest_or_images_assigns_after_the_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path / "cache"))
    vault = _vault(tmp_path, 3)
    first = build([vault], tmp_path / "one.apkg", now=1_000)
    calls: list[int] = []
    real_assign = ankigen.build.assign
    monkeypatch.setattr(ankigen.build, "assign",
                        lambda wanted, *a, **k: calls.append(len(wanted)) or real_assign(wanted, *a, **k))
    (vault / "cnn-000.md").write_text(CNN.read_text("utf-8") + "\nOne more thing I don't "
                                      "remember at all.\n", encoding="utf-8")
    again = build([vault], tmp_path / "two.apkg", now=2_000)  # the manifest is there now
    assert calls == [again.notes] and again.new == 1 and again.unchanged == first.notes
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path / "cache2"))  # nothing cached
    shutil.rmtree(vault / ".ankigen")
    shutil.copy(FIXTURES / "media" / "vault" / "ch1" / "img" / "kernel.png", vault / "pic.png")
    (vault / "sub" / "twice.md").write_text(TWICE + "> ![a plot](../pic.png)\n", "utf-8")
    calls.clear()
    third = build([vault], tmp_path / "three.apkg", now=3_000)  # a first build, with an image
    assert calls == [third.notes] and third.media == 1 and third.new == third.notes
