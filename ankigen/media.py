"""Images on cards: local ones packed into the deck, remote ones marked, hostile ones refused.

A card field may reference an image three ways: a markdown image (rendered to `<img src>`),
an HTML `<img src>` the sanitizer kept, or an Obsidian embed `![[name]]` / `![[name|300]]`
(left as text by the renderer). Each local reference is resolved the way Obsidian does —
relative to the note's folder, then from the vault's root, then by file name anywhere in
the vault — and packed under a name made from its bytes (`ankigen-<sha256[:20]>.<type>`),
so the same image always has the same name, two different images never share one, and a
re-import changes nothing. The card then references that bare name.

Notes are untrusted. Nothing outside the vault is ever read: a path is checked against the
vault's root as written before anything is looked up, then again with symlinks resolved;
only regular files are read, at most `MAX_BYTES` each, and only what the first bytes show
to be an image (PNG, JPEG, GIF, WebP, SVG, BMP, AVIF, ICO) is packed, whatever its name
says. Anything refused or missing is a warning naming the note and line, and the card shows
a short "(image …)" note in its place instead of a broken image.

Remote images (`http://`, `https://`, `//host/…`) stay remote: they load only where the
device is online, and carry `class="remote-image"` and a title saying so.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .model import Card
from .vault import inside, relative, walk

MAX_BYTES = 10 * 1024 * 1024  # per image: larger files are left out with a warning
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".avif",
                            ".ico", ".tif", ".tiff"})
PREFIX = "ankigen-"

_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_SRC_RE = re.compile(r"""(\ssrc\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.I)
_EMBED_RE = re.compile(r"!\[\[([^\]|]+?)(?:\|([^\]]*))?\]\]")
_SIZE_RE = re.compile(r"^\s*(\d{1,5})(?:\s*x\s*(\d{1,5}))?\s*$")
# Code shows references as text: nothing inside <pre> or <code> is rewritten.
_CODE_RE = re.compile(r"<(pre|code)\b.*?</\1>", re.I | re.S)
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_SVG_RE = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
                     rb"(?:<!DOCTYPE[^>]*>\s*)?(?:<!--.*?-->\s*)*<svg[\s>]", re.S | re.I)


def image_type(head: bytes) -> str | None:
    """The image type the first bytes show (a suffix without the dot), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "ico"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tif"
    if _SVG_RE.match(head[:4096]):
        return "svg"
    return None


@dataclass(frozen=True)
class Packed:
    name: str  # the bare name cards use
    data: bytes
    source: str  # where it came from, relative to the vault


@dataclass(frozen=True)
class Probe:
    """A path the build's images depend on, as it was: an unchanged build checks these."""

    path: str
    size: int  # -1: it did not exist
    mtime_ns: int


@dataclass
class Attached:
    cards: list[Card]
    media: dict[str, Packed] = field(default_factory=dict)  # by name
    warnings: list[str] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    remote: int = 0
    missing: int = 0  # references found nowhere: a file added later may resolve them


def has_images(card: Card) -> bool:
    return any("<img" in f or "![[" in f for f in card.fields)


class Resolver:
    """Image references of one build, resolved inside one vault."""

    def __init__(self, root: Path, texts: Mapping[str, bytes]):
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(root)
        self.texts = texts  # each note's bytes by its vault-relative path, for line numbers
        self._by_name: dict[str, list[str]] | None = None
        self.out = Attached([])
        self._done: dict[tuple[str, str], tuple[str | None, str]] = {}
        self._warned: set[str] = set()

    def attach(self, cards: Sequence[Card]) -> Attached:
        out = self.out
        for card in cards:
            if not has_images(card):
                out.cards.append(card)
                continue
            fields = tuple(self._field(f, card.file) for f in card.fields)
            if fields == card.fields:
                out.cards.append(card)
                continue
            digest = hashlib.sha256("\x1f".join((card.content_hash, *fields)).encode()
                                    ).hexdigest()[:16]
            out.cards.append(replace(card, fields=fields, content_hash=digest))
        return out

    # --- one field -----------------------------------------------------------------------

    def _field(self, value: str, note: str) -> str:
        if "<img" not in value and "![[" not in value:
            return value
        out: list[str] = []
        last = 0
        for m in _CODE_RE.finditer(value):
            out.append(self._outside_code(value[last:m.start()], note))
            out.append(m.group(0))
            last = m.end()
        out.append(self._outside_code(value[last:], note))
        return "".join(out)

    def _outside_code(self, text: str, note: str) -> str:
        text = _IMG_RE.sub(lambda m: self._img(m.group(0), note), text) if "<img" in text else text
        return _EMBED_RE.sub(lambda m: self._embed(m, note), text) if "![[" in text else text

    def _img(self, tag: str, note: str) -> str:
        m = _SRC_RE.search(tag)
        if m is None:
            return tag
        raw = html.unescape(next(g for g in m.groups()[1:] if g is not None))
        name, shown = self._resolve(raw, note, embed=False)
        if name is None:
            return shown
        if name == raw:  # remote, or an inline data: image: stays as it is, marked
            if "remote-image" in tag or not _is_remote(raw):
                return tag
            self.out.remote += 1
            return (tag[:m.start()] + ' class="remote-image" title="remote image: shown only '
                    'when online"' + tag[m.start():])
        return tag[:m.start()] + f'{m.group(1)}"{html.escape(name)}"' + tag[m.end():]

    def _embed(self, m: re.Match[str], note: str) -> str:
        target = html.unescape(m.group(1)).strip()
        if Path(target.split("#")[0]).suffix.lower() not in IMAGE_SUFFIXES:
            return m.group(0)  # a note embedded, not an image: the renderer's to show as text
        name, shown = self._resolve(target, note, embed=True)
        if name is None:
            return shown
        alt = html.escape(Path(target).name)
        size = _SIZE_RE.match(html.unescape(m.group(2) or ""))
        dims = ""
        if size:
            dims = f' width="{size.group(1)}"' + (f' height="{size.group(2)}"' if size.group(2)
                                                  else "")
        if name == target:  # an embed of a remote image
            self.out.remote += 1
            return (f'<img src="{html.escape(name)}" alt="{alt}"{dims} class="remote-image" '
                    'title="remote image: shown only when online">')
        return f'<img src="{html.escape(name)}" alt="{alt}"{dims}>'

    # --- resolving -----------------------------------------------------------------------

    def _resolve(self, raw: str, note: str, *, embed: bool) -> tuple[str | None, str]:
        """(bare media name, "") when packed; (raw, "") when it stays as written (remote);
        (None, what the card shows instead) when refused or missing (with a warning)."""
        key = (raw, note)
        if key not in self._done:
            self._done[key] = self._look_up(raw, note, embed)
        return self._done[key]

    def _look_up(self, raw: str, note: str, embed: bool) -> tuple[str | None, str]:
        ref = raw.strip()
        if not ref:
            return None, ""
        if _is_remote(ref):
            return ref, ""
        scheme = _SCHEME_RE.match(ref)
        if scheme and scheme.group(1).lower() == "data":
            return ref, ""  # inline, already in the field: nothing to read or pack
        if scheme and scheme.group(1).lower() == "file":
            ref = urlsplit(ref).path
        elif scheme and not (len(scheme.group(1)) == 1 and os.name == "nt"):
            return self._refuse(note, raw, "not an image address ankigen packs", "left out")
        path = unquote(ref.split("#")[0].split("?")[0]) if not embed else ref.split("#")[0]
        found, why = self._find(path, note)
        if found is None:
            return self._refuse(note, raw, why, why)
        return self._pack(found, raw, note)

    def _find(self, path: str, note: str) -> tuple[str | None, str]:
        """A candidate file inside the vault (as written, links not yet resolved)."""
        note_dir = os.path.dirname(os.path.join(self.root, note))
        if os.path.isabs(path):
            candidates = [os.path.normpath(path)]
        else:
            candidates = [os.path.normpath(os.path.join(note_dir, path)),
                          os.path.normpath(os.path.join(self.root, path))]
        # Checked as written first: a path that leaves the vault is never looked at.
        if not inside(candidates[0], self.root):
            return None, "outside the vault: not read"
        for cand in dict.fromkeys(candidates):
            if inside(cand, self.root) and self._probe(cand):
                return cand, ""
        by_name = self._index().get(os.path.basename(path).lower(), [])
        if by_name:
            # Obsidian's choice among same-named files: the nearest to the note first.
            best = min(by_name, key=lambda p: (not inside(p, note_dir), p.count(os.sep), p))
            return best, ""
        self.out.missing += 1
        return None, "not found"

    def _probe(self, path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            self.out.probes.append(Probe(path, -1, 0))
            return False
        return stat.S_ISREG(st.st_mode)

    def _index(self) -> dict[str, list[str]]:
        """The vault's image files by lower-cased name (walked once, on first need)."""
        if self._by_name is None:
            self._by_name = {}
            ignored: list[str] = []  # links leaving the vault: the notes' walk reports them
            for f in walk(Path(self.root), Path(self.root),
                          lambda n: Path(n).suffix.lower() in IMAGE_SUFFIXES, ignored):
                self._by_name.setdefault(os.path.basename(f).lower(), []).append(
                    os.path.abspath(f))
        return self._by_name

    def _pack(self, path: str, raw: str, note: str) -> tuple[str | None, str]:
        real = os.path.realpath(path)
        if not inside(real, self.real_root):
            return self._refuse(note, raw, "a link leading outside the vault: not read",
                                "outside the vault: not read")
        try:
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            return self._refuse(note, raw, f"cannot read: {exc.strerror}", "not readable")
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return self._refuse(note, raw, "not a regular file", "not a file")
            if st.st_size > MAX_BYTES:
                return self._refuse(note, raw, f"{st.st_size / 2**20:.1f} MB, over the "
                                    f"{MAX_BYTES // 2**20} MB limit per image", "too large")
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_BYTES:
            return self._refuse(note, raw, f"over the {MAX_BYTES // 2**20} MB limit per image",
                                "too large")
        kind = image_type(data[:4096])
        if kind is None and data.startswith(b"version https://git-lfs"):
            return self._refuse(note, raw, "a Git LFS pointer, not the image (git lfs pull "
                                "fetches it)", "not fetched")
        if kind is None:
            return self._refuse(note, raw, "not an image (its bytes are no PNG, JPEG, GIF, "
                                "WebP, SVG, BMP, AVIF, ICO or TIFF)", "not an image")
        name = f"{PREFIX}{hashlib.sha256(data).hexdigest()[:20]}.{kind}"
        self.out.media.setdefault(name, Packed(name, data, relative(path, self.root)))
        self.out.probes.append(Probe(real, st.st_size, st.st_mtime_ns))
        return name, ""

    def _refuse(self, note: str, raw: str, why: str, short: str) -> tuple[None, str]:
        line = self._line_of(note, raw)
        where = f"{note}:{line}" if line else note
        msg = f"{where}: image {raw!r}: {why}"
        if msg not in self._warned:
            self._warned.add(msg)
            self.out.warnings.append(msg)
        shown = html.escape(Path(raw).name or raw)
        return None, f'<span class="missing-image">(image {shown}: {html.escape(short)})</span>'

    def _line_of(self, note: str, raw: str) -> int | None:
        text = self.texts.get(note, b"").decode("utf-8", "replace")
        for needle in (raw, html.escape(raw, quote=False), os.path.basename(raw)):
            at = text.find(needle) if needle else -1
            if at >= 0:
                return text.count("\n", 0, at) + 1
        return None


def _is_remote(ref: str) -> bool:
    low = ref.lower()
    return low.startswith(("http://", "https://", "//"))


def attach(cards: Sequence[Card], root: Path, texts: Mapping[str, bytes]) -> Attached:
    """Cards with their image references resolved and rewritten, and the media to pack."""
    return Resolver(root, texts).attach(cards)


def unchanged(probes: Sequence[Sequence[object]]) -> bool:
    """Whether every file an earlier build's images depended on is as it was then."""
    for path, size, mtime_ns in probes:
        try:
            st = os.stat(str(path))
        except OSError:
            if size != -1:
                return False
            continue
        if size == -1 or st.st_size != size or st.st_mtime_ns != mtime_ns:
            return False
    return True
