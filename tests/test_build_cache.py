"""What a build keeps between runs: parsed files, documents only when checks want them, and a
manifest written the way json.dumps would."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

from anki.collection import Collection
from anki_helpers import import_apkg
from hypothesis import given, settings
from hypothesis import strategies as st

from ankigen.build import CACHED_CODE, ParseCache, build, discover, parse_all, read_all
from ankigen.identity import Entry, _entry_json
from ankigen.parse import parse_file

FIXTURES = Path(__file__).parent / "fixtures"
PACKAGE = Path(__file__).parent.parent / "ankigen"


def _imports(name: str) -> set[str]:
    """The ankigen modules `name` imports anywhere in it (lazy imports in functions too)."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / name).read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {f"{a.name}.py" for a in node.names} if node.module is None \
                else {f"{node.module.split('.')[0]}.py"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ankigen."):
            found.add(f"{node.module.split('.')[1]}.py")  # type: ignore[union-attr]
    return {f for f in found if (PACKAGE / f).is_file()}


def test_the_cache_version_covers_all_code_that_parses_and_makes_cards():
    """A change to any module parse.py or cards.py uses must invalidate cached parses."""
    closure, todo = set(), ["parse.py", "cards.py"]
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(_imports(name))
    assert "text.py" in closure and "errors.py" in closure  # the walk follows imports
    assert closure - set(CACHED_CODE) == set()


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.integers(-1, 10**6), st.integers(0, 2**40))
def test_manifest_lines_are_what_json_dumps_writes(anchor, file, ordinal, mtime):
    e = Entry("g" + anchor[:3], file, anchor, ordinal, "h", mtime)
    assert _entry_json(e) == json.dumps(e.__dict__, ensure_ascii=False)
    assert json.loads(_entry_json(e)) == e.__dict__


def test_documents_come_back_when_asked_for(tmp_path):
    vault = tmp_path / "vault"
    shutil.copytree(FIXTURES / "vault", vault)
    out = tmp_path / "deck.apkg"
    result = build([vault], out, checks=None, now=1_000)
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == result.notes == 10
    finally:
        col.close()
    # A build without checks keeps no documents, yet hands out the same ones on request.
    assert [d.gaps for d in result.docs] == [
        parse_file(vault / name, name).gaps for name in ("recall-cnn.md", "reference-autograd.md")]
    root, files = discover([vault])
    contents = read_all(files, False)
    again, parsed = parse_all(contents, ParseCache(root), False)
    assert parsed == 0  # cards came from the cache
    # A build with checks needs every document: files cached without one are parsed again,
    # and after that the cache holds them.
    with_docs, parsed = parse_all(contents, cache := ParseCache(root), False, keep_docs=True)
    assert parsed == 2 and all(p.doc_blob for p in with_docs)
    cache.save({rel for _, rel in files})
    assert parse_all(contents, ParseCache(root), False, keep_docs=True)[1] == 0
    assert [p.cards for p in with_docs] == [p.cards for p in again]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=4))
def test_guids_are_genankis(values):
    import genanki

    from ankigen.identity import guid_for

    assert guid_for(*values) == genanki.guid_for(*values)


def test_markdown_without_normalize_gives_the_same_blocks():
    from ankigen.blocks import _md, to_blocks

    for path in sorted((FIXTURES / "seeds").glob("*.md")) + sorted(FIXTURES.glob("*/*.md")):
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        text = text.replace("\r", "\n").replace("\0", "")
        assert [t.as_dict() for t in _md(False).parse(text)] == \
            [t.as_dict() for t in _md(True).parse(text)], path
    spans = [(b.kind, b.start, b.end) for b in to_blocks("a\r\n\r\n- b\0c\r\n")]
    assert spans == [(b.kind, b.start, b.end) for b in to_blocks("a\n\n- b\ufffdc\n")]
