"""Stable note identity across edits, insertions and renames.

Position-based ids (file + ordinal) shift every card below an inserted gap into
its neighbour's note; ids hashed from text duplicate a card on every edit. So a
fresh gap's GUID is hashed from its file and normalised anchor (no position), and
a manifest kept beside the notes (`.ankigen/manifest.json`, committed with them,
never IDs inside the notes) carries each GUID across edits by matching the new
build's gaps to the previous build's: exact anchor, then text similarity near the
same position, then files that vanished (renames).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, OutputError

# A frozen dataclass's `__init__` sets each field through `object.__setattr__`, about
# 0.5 µs an object; a build makes 10,000s. The `of` constructors below fill the instance's
# `__dict__` in one call instead (about 0.3 µs): the same fields, equality, hash and repr,
# and assigning to a field still raises FrozenInstanceError.
_bare = object.__new__

MANIFEST_DIR = ".ankigen"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
SIMILAR = 0.6  # anchors at least this similar are the same gap, edited


@dataclass(frozen=True)
class Entry:
    guid: str
    file: str
    anchor: str
    ordinal: int
    hash: str
    mtime: int

    @classmethod
    def of(cls, guid: str, file: str, anchor: str, ordinal: int, hash: str, mtime: int
           ) -> Entry:
        """`Entry(...)` for bulk use (see `_bare`): equal to it, and as frozen."""
        e = _bare(cls)
        e.__dict__.update(guid=guid, file=file, anchor=anchor, ordinal=ordinal, hash=hash,
                          mtime=mtime)
        return e


@dataclass(frozen=True)
class Wanted:
    """A gap of this build that needs an identity."""

    file: str
    anchor: str
    ordinal: int
    hash: str
    candidate: str = ""  # first_guid(file, anchor) when the caller already has it

    @classmethod
    def of(cls, file: str, anchor: str, ordinal: int, hash: str, candidate: str = ""
           ) -> Wanted:
        """`Wanted(...)` for bulk use (see `_bare`): equal to it, and as frozen."""
        w = _bare(cls)
        w.__dict__.update(file=file, anchor=anchor, ordinal=ordinal, hash=hash,
                          candidate=candidate)
        return w


@dataclass(frozen=True)
class Assigned:
    guid: str
    mtime: int
    status: str  # "new" | "changed" | "unchanged"

    @classmethod
    def of(cls, guid: str, mtime: int, status: str) -> Assigned:
        """`Assigned(...)` for bulk use (see `_bare`): equal to it, and as frozen."""
        a = _bare(cls)
        a.__dict__.update(guid=guid, mtime=mtime, status=status)
        return a


def short_id(guid: str) -> str:
    """A tag-safe id for a GUID: `tag:ankigen::id::<this>` finds the note in Anki."""
    return hashlib.sha1(guid.encode()).hexdigest()[:12]


def manifest_path(vault: Path) -> Path:
    return vault / MANIFEST_DIR / MANIFEST_NAME


def load(vault: Path) -> list[Entry]:
    path = manifest_path(vault)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text("utf-8"))
        return [Entry(**e) for e in data["notes"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"manifest is damaged ({exc}); delete it to start afresh",
                         path=str(path)) from None


def save(vault: Path, entries: list[Entry]) -> None:
    save_text(vault, manifest_text(entries))


def manifest_text(entries: list[Entry]) -> str:
    """The manifest `save` writes (a build makes it while its deck is being written)."""
    rows = sorted(entries, key=lambda e: (e.file, e.ordinal, e.guid))
    return manifest_of([_entry_json(e) for e in rows])


def manifest_of(lines: list[str]) -> str:
    """`manifest_text` of entries already in its order, as `entry_json` lines (a first
    build makes them as its files arrive)."""
    # One note per line: diffs of the committed manifest stay readable.
    notes = ",\n  ".join(lines)
    return (f'{{"version": {MANIFEST_VERSION},\n "about": "ankigen note identities; commit '
            f'this with your notes",\n "notes": [\n  {notes}\n ]}}\n')


def save_text(vault: Path, text: str) -> None:
    """Write a `manifest_text` unless the manifest already says exactly that."""
    path = manifest_path(vault)
    if path.exists() and path.read_text("utf-8") == text:
        return
    atomic_write(path, text.encode("utf-8"))


_STR = json.encoder.encode_basestring  # what json.dumps(..., ensure_ascii=False) writes


def _entry_json(e: Entry) -> str:
    return entry_json(e.guid, e.file, e.anchor, e.ordinal, e.hash, e.mtime)


def entry_json(guid: str, file: str, anchor: str, ordinal: int, hash: str, mtime: int) -> str:
    """`json.dumps(Entry(...).__dict__, ensure_ascii=False)`, written out (a vault has
    10,000s)."""
    return (f'{{"guid": {_STR(guid)}, "file": {_STR(file)}, "anchor": {_STR(anchor)}, '
            f'"ordinal": {ordinal}, "hash": {_STR(hash)}, "mtime": {mtime}}}')


def ensure_folder(path: Path) -> None:
    """Make the folder `path` goes in, or say plainly which part of it is a file."""
    blocker = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"cannot write: {blocker} is not a folder", path=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None


def atomic_write(path: Path, data: bytes) -> None:
    ensure_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, public_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def public_mode() -> int:
    """What a plain open() would have given (mkstemp makes files private)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_BASE91 = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
           "!#$%&()*+,-./:;<=>?@[]^_`{|}~")


def guid_for(*values: object) -> str:
    """`genanki.guid_for`, without rebuilding its table on every call (tested equal)."""
    n = int.from_bytes(hashlib.sha256("__".join(map(str, values)).encode("utf-8")).digest()[:8],
                       "big")
    out = []
    while n >= 8281:  # two base-91 digits a step
        n, r = divmod(n, 8281)
        out.append(_BASE91_PAIRS[r])
    if n >= 91:
        out.append(_BASE91_PAIRS[n])
    elif n > 0:
        out.append(_BASE91[n])  # no leading zero digit, as genanki
    return "".join(reversed(out))


_BASE91_PAIRS = [a + b for a in _BASE91 for b in _BASE91]  # [91 * i + j] = digits i, j


def first_guid(file: str, anchor: str) -> str:
    """The GUID a gap gets when no other gap has taken it (parse workers precompute it)."""
    return guid_for("ankigen", file.rsplit(".", 1)[0], anchor)


def fresh_guid(file: str, anchor: str, taken: set[str], candidate: str = "") -> str:
    """Deterministic from file and anchor; a counter only on collision."""
    if candidate and candidate not in taken:
        return candidate
    key = file.rsplit(".", 1)[0]
    n = 1 if candidate else 0  # the candidate is the counter-less GUID: taken, no need to hash it
    while True:
        guid = guid_for("ankigen", key, anchor, *([n] if n else []))
        if guid not in taken:
            return guid
        n += 1


def assign(wanted: list[Wanted], previous: list[Entry], now: int | None = None,
           reserved: frozenset[str] = frozenset()
           ) -> tuple[list[Assigned], list[Entry]]:
    """Match this build's gaps to the previous build's.

    Returns (one Assigned per wanted, orphaned entries); `manifest_entries` makes the new
    manifest's entries from them.
    `reserved`: GUIDs of notes outside what this build judges (the rest of the vault when
    one file or folder is built): never matched, never handed out again.
    """
    now = int(time.time()) if now is None else now
    match: dict[int, Entry] = {}
    free_old = list(previous)
    by_key: dict[tuple[str, str], list[Entry]] = {}
    for e in free_old:
        by_key.setdefault((e.file, e.anchor), []).append(e)
    used: set[str] = set()

    # 1. Same file, same anchor (duplicates in order).
    for i, w in enumerate(wanted if by_key else ()):
        cands = by_key.get((w.file, w.anchor))
        if cands:
            e = cands.pop(0)
            match[i] = e
            used.add(e.guid)
    remaining_old = [e for e in free_old if e.guid not in used]

    # 2. Same file, similar anchor near the same position (an edited gap).
    _similar(wanted, match, remaining_old, used, same_file=True)
    # 3. Renamed or moved files: old entries whose file produced no gaps now.
    files_now = {w.file for w in wanted}
    vanished = [e for e in previous if e.guid not in used and e.file not in files_now]
    _exact_anywhere(wanted, match, vanished, used)
    _similar(wanted, match, [e for e in vanished if e.guid not in used], used, same_file=False)

    taken = {e.guid for e in previous} | used | reserved
    out: list[Assigned] = []
    for i, w in enumerate(wanted):
        old = match.get(i)
        if old is None:
            guid = fresh_guid(w.file, w.anchor, taken, w.candidate)
            taken.add(guid)
            a = Assigned.of(guid, now, "new")
        elif old.hash == w.hash:
            a = Assigned.of(old.guid, old.mtime, "unchanged")
        else:
            a = Assigned.of(old.guid, max(now, old.mtime + 1), "changed")
        out.append(a)
    orphans = [e for e in previous if e.guid not in used]
    return out, orphans


def manifest_entries(wanted: list[Wanted], assigned: list[Assigned]) -> list[Entry]:
    """The manifest entries of what `assign` gave (a build makes them while its deck is
    written)."""
    return [Entry.of(a.guid, w.file, w.anchor, w.ordinal, w.hash, a.mtime)
            for w, a in zip(wanted, assigned, strict=True)]


def _exact_anywhere(wanted: list[Wanted], match: dict[int, Entry], old: list[Entry],
                    used: set[str]) -> None:
    if not old:
        return
    by_anchor: dict[str, list[Entry]] = {}
    for e in old:
        by_anchor.setdefault(e.anchor, []).append(e)
    for i, w in enumerate(wanted):
        if i in match:
            continue
        cands = by_anchor.get(w.anchor)
        while cands:
            e = cands.pop(0)
            if e.guid not in used:
                match[i] = e
                used.add(e.guid)
                break


def _similar(wanted: list[Wanted], match: dict[int, Entry], old: list[Entry], used: set[str],
             *, same_file: bool) -> None:
    if not old:  # (a first build has no previous entries: no pass over its gaps)
        return
    todo = [i for i in range(len(wanted)) if i not in match]
    if not todo:
        return
    scored: list[tuple[float, int, int, Entry]] = []
    for i in todo:
        w = wanted[i]
        for e in old:
            if same_file and e.file != w.file:
                continue
            sm = difflib.SequenceMatcher(None, w.anchor, e.anchor, autojunk=False)
            if sm.real_quick_ratio() < SIMILAR or sm.quick_ratio() < SIMILAR:
                continue
            r = sm.ratio()
            if r >= SIMILAR:
                scored.append((-r, abs(e.ordinal - w.ordinal), i, e))
    scored.sort(key=lambda t: (t[0], t[1], t[2], t[3].guid))
    for _neg, _dist, i, e in scored:
        if i in match or e.guid in used:
            continue
        match[i] = e
        used.add(e.guid)
