"""Images on cards (ankigen/media.py): packed, imported into Anki, stable, and never read
from outside the vault."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered

from ankigen import media
from ankigen.build import build
from ankigen.model import Card

FIXTURES = Path(__file__).parent / "fixtures" / "media"
NOTE = "ch1/recall-images.md"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "vault"
    shutil.copytree(FIXTURES / "vault", v)
    return v


def _col(path: Path) -> Collection:
    return Collection(str(path))


def _names(field: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]+)"', field)


def test_local_images_are_packed_imported_and_referenced_by_bare_name(vault, tmp_path):
    out = tmp_path / "deck.apkg"
    result = build([vault], out, checks=None, now=1_000)
    assert (result.notes, result.media, result.remote_images) == (4, 3, 1)
    with zipfile.ZipFile(out) as z:
        packed = set(json.loads(z.read("media")).values())
    assert len(packed) == 3 and all(re.fullmatch(r"ankigen-[0-9a-f]{20}\.(png|svg)", n)
                                    for n in packed)
    col = _col(tmp_path / "c.anki2")
    try:
        assert import_apkg(col, out).new == 4
        in_folder = set(os.listdir(col.media.dir()))
        cards = rendered(col)
    finally:
        col.close()
    assert packed <= in_folder
    answers = "\n".join(a for _, _, a in cards)
    local = {n for n in _names(answers) if not n.startswith("https://")}
    assert local == packed  # every local reference is a bare name Anki holds
    kernel = (vault / "ch1/img/kernel.png").read_bytes()

    assert f"ankigen-{hashlib.sha256(kernel).hexdigest()[:20]}.png" in packed
    assert 'alt="pooling.svg" width="300"' in answers  # the embed's size is kept
    assert ('<img class="remote-image" title="remote image: shown only when online" '
            'src="https://example.org/padding.png" alt="padding"') in answers
    assert "../" not in answers and "/etc/" not in answers


def test_hostile_and_missing_images_are_warnings_not_media(vault, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG_HEAD + b"outside the vault")
    (vault / "ch1" / "img" / "evil.png").symlink_to(outside)
    big = vault / "attachments" / "huge.png"
    big.write_bytes(PNG_HEAD + b"\0" * (media.MAX_BYTES + 1))
    note = vault / "ch1" / "hostile.md"
    note.write_text("# Notes\n\nSo, attacks. A note may point anywhere.\n\n"
                    "🔴 => look:\n> ![a](img/evil.png) ![[huge.png]]\n"
                    f"> ![c]({outside})\n", "utf-8")
    result = build([vault], tmp_path / "deck.apkg", checks=None, now=1_000)
    mine = sorted(w for w in result.warnings if w.startswith("ch1/hostile.md"))
    assert mine == [
        "ch1/hostile.md:6: image 'huge.png': 10.0 MB, over the 10 MB limit per image",
        "ch1/hostile.md:6: image 'img/evil.png': a link leading outside the vault: not read",
        f"ch1/hostile.md:7: image '{outside}': outside the vault: not read",
    ]
    assert "ch1/recall-images.md:31: image 'img/stride.png': not found" in result.warnings
    assert ("ch1/recall-images.md:31: image '../../../../../../etc/passwd': outside the "
            "vault: not read") in result.warnings
    assert ("ch1/recall-images.md:31: image 'fake.png': not an image (its bytes are no PNG, "
            "JPEG, GIF, WebP, SVG, BMP, AVIF, ICO or TIFF)") in result.warnings
    with zipfile.ZipFile(tmp_path / "deck.apkg") as z:
        data = [z.read(n) for n in z.namelist() if n.isdigit()]
    assert result.media == 3 and not any(b"outside the vault" in d or len(d) > media.MAX_BYTES
                                         or b"<script>" in d for d in data)
    col = _col(tmp_path / "c.anki2")
    try:
        import_apkg(col, tmp_path / "deck.apkg")
        hostile = next(a for _, _, a in rendered(col) if "attacks" in a)
    finally:
        col.close()
    assert '<span class="missing-image">(image evil.png: outside the vault: not read)</span>' \
        in hostile
    assert "<img" not in hostile  # no broken image: each refused one is a short note


def test_html_img_tags_the_sanitizer_keeps_are_resolved_too(vault, tmp_path):
    (vault / ".obsidian").mkdir()  # the vault's root, though only a subfolder is built
    (vault / "ch1" / "deeper").mkdir()
    (vault / "ch1" / "deeper" / "html.md").write_text(
        "# Notes\n\nSo, kernels in HTML.\n\n🟡 => the figure:\n"
        '> <img src="../img/kernel.png" width="120"> <img src="/etc/hostname" alt="h">\n',
        "utf-8")
    out = tmp_path / "deck.apkg"
    result = build([vault / "ch1" / "deeper"], out, checks=None, now=1_000)
    assert result.warnings == (
        "ch1/deeper/html.md:6: image '/etc/hostname': outside the vault: not read",)
    col = _col(tmp_path / "c.anki2")
    try:
        import_apkg(col, out)
        [(_, _, back)] = rendered(col)
        held = set(os.listdir(col.media.dir()))
    finally:
        col.close()
    kernel = (vault / "ch1" / "img" / "kernel.png").read_bytes()
    name = f"ankigen-{hashlib.sha256(kernel).hexdigest()[:20]}.png"
    assert _names(back) == [name] and name in held and 'width="120"' in back
    assert "(image hostname: outside the vault: not read)" in back


def test_reimport_keeps_media_and_a_changed_image_updates_its_card(vault, tmp_path):
    out = tmp_path / "deck.apkg"
    first = build([vault], out, checks=None, now=1_000)
    col = _col(tmp_path / "c.anki2")
    try:
        import_apkg(col, out)
        before = sorted(os.listdir(col.media.dir()))
        again = build([vault], out, checks=None, now=2_000)
        assert not again.written and again.unchanged == first.notes  # up to date, fast
        log = import_apkg(col, out)
        assert (log.new, log.updated) == (0, 0)
        assert sorted(os.listdir(col.media.dir())) == before
        # New bytes under the same file name: a new media name, and its card updates.
        kernel = vault / "ch1" / "img" / "kernel.png"
        kernel.write_bytes(kernel.read_bytes() + b"\0")
        third = build([vault], out, checks=None, now=3_000)
        assert third.written and third.changed == 1
        log = import_apkg(col, out)
        assert (log.new, log.updated) == (0, 1)
        added = set(os.listdir(col.media.dir())) - set(before)
        assert len(added) == 1
        card = next(a for _, _, a in rendered(col) if "kernel sliding" in a)
        assert _names(card) == [added.pop()]
    finally:
        col.close()


def test_an_image_added_later_resolves_a_missing_reference(vault, tmp_path):
    out = tmp_path / "deck.apkg"
    build([vault], out, checks=None, now=1_000)
    (vault / "ch1" / "img" / "stride.png").write_bytes(PNG_HEAD + b"stride")
    again = build([vault], out, checks=None, now=2_000)
    assert again.written and again.media == 4
    assert not any("stride.png" in w for w in again.warnings)


def test_a_git_lfs_pointer_is_named_as_such(vault):
    (vault / "attachments" / "lfs.png").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:50ed\nsize 51234\n", "utf-8")
    got = media.Resolver(vault, {"n.md": b"![[lfs.png]]\n"}).attach([_card("<p>![[lfs.png]]</p>")])
    assert got.warnings == ["n.md:1: image 'lfs.png': a Git LFS pointer, not the image "
                            "(git lfs pull fetches it)"]
    assert not got.media


def test_image_type_is_read_from_the_bytes():
    assert media.image_type(PNG_HEAD + b"rest") == "png"
    assert media.image_type(b"\xff\xd8\xff\xe0") == "jpg"
    assert media.image_type(b"GIF89a....") == "gif"
    assert media.image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert media.image_type(b'<?xml version="1.0"?>\n<!-- x -->\n<svg xmlns="...">') == "svg"
    assert media.image_type(b"<html><svg>") is None
    assert media.image_type(b"root:x:0:0:root:/root:/bin/bash\n") is None


def test_file_urls_and_other_schemes_are_refused_without_reading(vault):
    resolver = media.Resolver(vault, {"n.md": b'x\n<img src="file:///etc/passwd">\n'})
    got = resolver.attach([_card('<p><img src="file:///etc/passwd"> <img src="ftp://h/x.png">'
                                 ' <img src="data:image/png;base64,iVBO"></p>')])
    assert got.warnings == ["n.md:2: image 'file:///etc/passwd': outside the vault: not read",
                            "n.md: image 'ftp://h/x.png': not an image address ankigen packs"]
    assert got.cards[0].fields[1] == (
        '<p><span class="missing-image">(image passwd: outside the vault: not read)</span> '
        '<span class="missing-image">(image x.png: left out)</span> '
        '<img src="data:image/png;base64,iVBO"></p>')
    assert not got.media and not got.probes  # nothing was even looked at


def test_references_inside_code_stay_text(vault):
    field = '<pre><code>![[kernel.png]] &lt;img src="x.png"&gt;</code></pre> <code>![[a.png]]</code>'
    got = media.Resolver(vault, {}).attach([_card(field)])
    assert got.cards[0].fields[1] == field and not got.warnings


def _card(back: str) -> Card:
    return Card(guid="g", model="basic", deck="ankigen::n", fields=("q", back, "", "", ""),
                      tags=(), sort_key=("n.md", 0), anchor="a", file="n.md", content_hash="h")
