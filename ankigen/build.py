"""The notes → deck pipeline: find files, parse (cached), cards, identities, checks, write."""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import hashlib
import json
import os
import pickle
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .cards import card_for, wanted
from .deck import TEMPLATE_VERSION, RowsAhead, to_package, writing_to
from .errors import InputError
from .identity import (
    Assigned,
    Entry,
    Wanted,
    assign,
    atomic_write,
    entry_json,
    first_guid,
    fresh_guid,
    load,
    manifest_entries,
    manifest_of,
    manifest_text,
    save_text,
    short_id,
)
from .media import Attached, attach, has_images
from .media import unchanged as media_unchanged
from .model import Card, CheckOutput, Document, Gap, check_key
from .parse import parse_text
from .render import css
from .text import MARKDOWN_SUFFIXES, decode, read_notes
from .vault import Scope, find_root, relative, scope_of, walk

if TYPE_CHECKING:
    from .forked import ForkMap
    from .llmcards import Written


# The modules whose code decides a cached parse or card: everything parse.py and cards.py
# import, directly or not (tests/test_build_cache.py checks this against their imports), plus
# identity (GUIDs) and media (image references in fields).
CACHED_CODE = ("blocks.py", "model.py", "parse.py", "phrases.py", "text.py", "code_claims.py",
               "cards.py", "render.py", "layout.py", "identity.py", "fronts.py", "md_rules.py",
               "sanitize.py", "topics.py", "media.py", "marks.py", "python_code.py", "errors.py",
               "wrote.py")


@functools.cache
def parser_version() -> str:
    """Cached parses (and the cards made from them) are only valid for the exact code that
    made them."""
    h = hashlib.sha256(__version__.encode())
    here = Path(__file__).parent
    for name in CACHED_CODE:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Orphan:
    file: str
    anchor: str
    search: str  # an Anki search that finds the note


@dataclass(frozen=True)
class BuildResult:
    out: str
    written: bool
    files: int
    notes: int
    new: int
    changed: int
    unchanged: int
    by_mark: dict[str, int]
    orphans: tuple[Orphan, ...]
    warnings: tuple[str, ...]
    checks: str  # what happened to runnable checks
    checks_run: int = 0
    parsed: int = 0  # files parsed this build (the rest came from the cache)
    model: str = ""  # what a model did (`--llm`), "" when none was asked
    model_wrote: int = 0  # cards whose front and back a model wrote
    model_fell_back: int = 0  # gaps that kept their offline card
    model_calls: int = 0  # answered completions this build (0 when all came from the cache)
    model_cache_hits: int = 0
    model_kept: tuple[str, ...] = ()  # "file:line: why" for each gap that kept its offline card
    seconds: float = 0.0
    # What ran when, in seconds from the build's start: "parse", "checks", "deck" and, when
    # a check server was started, "server start" (begun while parsing: ankigen.checks.early).
    timings: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    media: int = 0  # images packed into the deck
    remote_images: int = 0  # image references left remote (shown only when online)
    parsed_files: tuple[Parsed, ...] = field(default=(), repr=False, compare=False)

    @property
    def docs(self) -> tuple[Document, ...]:
        """The parsed documents (unpickled on first use: a build itself rarely needs them)."""
        return tuple(p.doc() for p in self.parsed_files)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "parsed_files"}
        d["orphans"] = [o.__dict__ for o in self.orphans]
        d["warnings"] = list(self.warnings)
        d["model_kept"] = list(self.model_kept)
        return d


def cache_dir() -> Path:
    env = os.environ.get("ANKIGEN_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs  # (~5 ms of start-up, only where the folder is not given)

    return Path(platformdirs.user_cache_dir("ankigen"))


def discover(paths: list[Path]) -> tuple[Path, list[tuple[Path, str]]]:
    """The vault root and its notes files as (path, path relative to the root)."""
    found = discover_vault(paths)
    return found.root, found.files


@dataclass(frozen=True)
class Discovered:
    root: Path  # the vault's root (vault.find_root): paths and identities are relative to it
    files: list[tuple[Path, str]]  # (path, path relative to the root)
    scope: Scope  # what was asked for: a build judges only these files' gaps
    warnings: tuple[str, ...]  # links not followed, loops


def discover_vault(paths: list[Path]) -> Discovered:
    """The notes files under the given files and folders, and the vault they belong to."""
    if not paths:
        raise InputError("no notes given")
    for p in paths:
        if not p.exists():
            raise InputError("no such file or directory", path=str(p))
    given = [Path(os.path.realpath(p)) if p.is_dir() else
             Path(os.path.realpath(p.parent)) / p.name for p in paths]
    common = Path(os.path.commonpath([str(g if g.is_dir() else g.parent) for g in given]))
    root = find_root(common)
    warnings: list[str] = []
    files: list[str] = []
    for p, g in zip(paths, given, strict=True):
        if g.is_dir():
            found = walk(g, root, _is_vault_note, warnings)
            if not found:
                raise InputError("no markdown notes found (expected *.md files)", path=str(p))
            files.extend(found)
        else:
            read_notes(p)  # raises a clear error for what is not markdown
            files.append(str(g))
    seen: set[str] = set()
    out = []
    for f in files:
        rel = relative(f, str(root))
        if rel not in seen:
            seen.add(rel)
            out.append((Path(f), rel))
    return Discovered(root, out, scope_of(given, root), tuple(warnings))


CACHE_FORMAT = 4  # entries: pickled (warnings, plain cards, pickled document or b"")
ParseResult = tuple[tuple[str, ...], list[Card], bytes]  # what a cache entry pickles


@dataclass
class Parsed:
    """One notes file as a build needs it: its cards as parsed and, on demand, its document.

    Most builds never look at a document again once its cards are made (only checks do):
    then it is neither pickled by the worker nor kept in the cache, and `doc()` parses the
    file again if anyone asks. Builds with checks keep it, pickled until asked for.
    """

    rel: str
    digest: str
    warnings: tuple[str, ...]
    cards: list[Card]  # without check outputs
    doc_blob: bytes  # b"" when the build that parsed it did not keep documents
    data: bytes
    include_green: bool
    _doc: Document | None = None
    # Whether a card's fields reference an image: found as the results come in, while the
    # workers still parse, so that a build without images never scans its cards after.
    images: bool = True

    def doc(self) -> Document:
        if self._doc is None:
            self._doc = (pickle.loads(self.doc_blob) if self.doc_blob
                         else _parse_doc(self.rel, self.data, self.include_green))
        return self._doc


VAULT_SUFFIXES = MARKDOWN_SUFFIXES - {".txt"}


def _is_vault_note(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VAULT_SUFFIXES


def _notes_under(folder: Path) -> list[str]:
    """Markdown files in a vault folder, skipping hidden files and folders (.git, .ankigen),
    in path order (folder by folder, as sorting Paths would give); links followed inside
    the folder only (see vault.walk)."""
    return walk(folder, folder, _is_vault_note, [])


class ParseCache:
    """Parsed files keyed by (file bytes, parser version): an unchanged vault parses nothing.

    Each file's entry is the pickle its parse worker already made to send it back, so
    saving the cache costs a write, not a second pickling of every document and card.
    """

    def __init__(self, root: Path, enabled: bool = True):
        key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        self.path = cache_dir() / "parsed" / f"{key}.pickle"
        self.enabled = enabled
        self.data: dict[str, tuple[str, bytes]] = {}
        self.cards: dict[str, tuple[str, list[Card]]] = {}  # cards that carry check outputs
        self.dirty = False
        if enabled and self.path.exists():
            try:
                with self.path.open("rb") as fh:
                    loaded = pickle.load(fh)
                if (loaded.get("version") == parser_version()
                        and loaded.get("format") == CACHE_FORMAT):
                    self.data, self.cards = loaded["docs"], loaded["cards"]
            except Exception:  # a stale or damaged cache is only a slower build
                self.data, self.cards = {}, {}

    def get(self, rel: str, digest: str, data: bytes, include_green: bool,
            need_doc: bool) -> Parsed | None:
        hit = self.data.get(rel)
        if not hit or hit[0] != digest:
            return None
        try:
            found = _unpack(rel, digest, hit[1], data, include_green)
        except Exception:  # a damaged entry is parsed again
            return None
        return None if need_doc and not found.doc_blob else found

    def put(self, rel: str, digest: str, blob: bytes, data: bytes, include_green: bool
            ) -> Parsed:
        self.data[rel] = (digest, blob)
        self.dirty = True
        return _unpack(rel, digest, blob, data, include_green)

    def put_parsed(self, rel: str, digest: str, result: ParseResult, data: bytes,
                   include_green: bool) -> Parsed:
        """`put` for a file parsed in this process (pickled here, while the workers parse,
        when the cache is kept; never unpickled)."""
        if self.enabled:
            self.data[rel] = (digest, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            self.dirty = True
        warnings, cards, doc_blob = result
        return Parsed(rel, digest, warnings, cards, doc_blob, data, include_green,
                      images=any(has_images(c) for c in cards))

    def cards_for(self, parsed: Parsed, doc: Document, gaps: list[Gap],
                  outputs: dict[str, CheckOutput]) -> list[Card]:
        """Card fields depend only on the document and its checks' outputs: reuse them."""
        found = [outputs.get(_check_key(doc, g)) for g in gaps]
        if not any(found):
            return parsed.cards  # as the parse made them
        key = _cards_key(parsed.digest, doc, found)
        hit = self.cards.get(doc.path)
        if hit and hit[0] == key:
            return hit[1]
        cards = [card_for(g, doc, i, o, guid=first_guid(doc.path, g.anchor), keep_gap=False)
                 for i, (g, o) in enumerate(zip(gaps, found, strict=True))]
        self.cards[doc.path] = (key, cards)
        self.dirty = True
        return cards

    def save(self, keep: set[str]) -> None:
        if not self.enabled:
            return
        stale = (set(self.data) | set(self.cards)) - keep
        for rel in stale:
            self.data.pop(rel, None)
            self.cards.pop(rel, None)
        if not (self.dirty or stale):
            return
        try:
            payload = {"version": parser_version(), "format": CACHE_FORMAT, "docs": self.data,
                       "cards": self.cards}
            atomic_write(self.path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            pass  # the cache is an optimisation, never a reason to fail a build


def _unpack(rel: str, digest: str, blob: bytes, data: bytes, include_green: bool) -> Parsed:
    warnings, cards, doc_blob = pickle.loads(blob)
    # A field that references an image holds one of these as it is in the pickle (UTF-8).
    maybe = b"<img" in blob or b"![[" in blob
    return Parsed(rel, digest, warnings, cards, doc_blob, data, include_green,
                  images=maybe and any(has_images(c) for c in cards))


def _parse_doc(rel: str, data: bytes, include_green: bool) -> Document:
    read = decode(data, rel)
    doc = parse_text(read.text, rel, include_green=include_green)
    return replace(doc, encoding=read.encoding, repairs=read.repairs,
                   warnings=read.warnings + doc.warnings)


def _parse_here(job: tuple[str, bytes, bool, bool]) -> ParseResult:
    """Parse one file and make its cards as they are without check outputs.

    Cards carry the GUID they get unless another gap took it first (hashing it here
    spreads the work over the parse workers)."""
    rel, data, include_green, keep_doc = job
    doc = _parse_doc(rel, data, include_green)
    mine = [g for g in doc.gaps if wanted(g, include_green)]
    cards = [card_for(g, doc, i, guid=first_guid(rel, g.anchor), keep_gap=False)
             for i, g in enumerate(mine)]
    doc_blob = pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL) if keep_doc else b""
    return doc.warnings, cards, doc_blob


def _parse_one(job: tuple[str, bytes, bool, bool]) -> bytes:
    """`_parse_here`, pickled: both what a parse worker sends back and the file's cache entry."""
    return pickle.dumps(_parse_here(job), protocol=pickle.HIGHEST_PROTOCOL)


PARALLEL_FROM = 64  # below this many files to parse, a process pool costs more than it saves


def read_all(files: list[tuple[Path, str]], include_green: bool) -> list[tuple[str, bytes, str]]:
    """(relative path, bytes, content digest) for every file."""
    out = []
    for path, rel in files:
        try:
            data = _read_bytes(path)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", path=rel) from None
        if b"\x00" in data[:8192]:
            raise InputError("not a markdown file (binary content)", path=rel)
        out.append((rel, data, hashlib.sha256(data).hexdigest() + ("g" if include_green else "")))
    return out


def _read_bytes(path: Path) -> bytes:
    """`path.read_bytes()` without a file object: ~3 us a file less (a vault's 1,000 files are
    read on one core before the parse workers fork)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_all(files: list[tuple[str, bytes, str]], cache: ParseCache, include_green: bool,
              progress: Progress | None = None, *, keep_docs: bool = False,
              started: Callable[[list[bytes]], None] | None = None,
              each: Callable[[Parsed], None] | None = None
              ) -> tuple[list[Parsed], int]:
    """Every file as parsed: from the cache where its bytes are unchanged, else parsed now.

    `keep_docs`: the caller will want every document (checks do), so keep them pickled.
    `started(contents)`: told what is being parsed once the parse is under way (after the
    pool has forked: it may start threads), if anything is to be parsed.
    `each(parsed)`: told each file as it arrives, in file order, while the rest are still
    being parsed; only when every file is parsed now (none from the cache).
    """
    found: dict[str, Parsed] = {}
    todo: list[tuple[str, str, bytes]] = []
    for rel, data, digest in files:
        hit = cache.get(rel, digest, data, include_green, keep_docs)
        if hit is None:
            todo.append((rel, digest, data))
        else:
            found[rel] = hit
    jobs = [(rel, data, include_green, keep_docs) for rel, _, data in todo]
    done = len(files) - len(todo)
    if done:
        each = None

    def take(blobs: Iterable[bytes | ParseResult]) -> None:
        """Unpack each result as it arrives (a worker's pickle, or what this process parsed
        itself), while the workers go on parsing."""
        nonlocal done
        for (rel, digest, data), blob in zip(todo, blobs, strict=True):
            found[rel] = (cache.put(rel, digest, blob, data, include_green)
                          if isinstance(blob, bytes)
                          else cache.put_parsed(rel, digest, blob, data, include_green))
            if each is not None:
                each(found[rel])
            done += 1
            if progress:
                progress("parse", done, len(files))

    cores = min(os.cpu_count() or 1, 8)
    if len(todo) >= PARALLEL_FROM and cores > 1:
        from .forked import ForkMap

        # Forks: workers inherit the imported parser and every file's bytes; nothing is
        # re-imported or sent to them. This process parses too (`here`) while it waits:
        # one fork fewer, and its own results are never pickled to come back and unpickled
        # (only for the cache, when it is kept). Small chunks: the last one to finish idles
        # its partner for less time.
        with ForkMap(_parse_one, jobs, cores - 1, max(1, len(jobs) // (cores * 32)),
                     here=_parse_here) as results:
            if started:
                started([data for _, _, data in todo])
            take(results)
            results.close(reap=False)  # all in: the build reaps the workers once it is done
    else:
        if started and todo:
            started([data for _, _, data in todo])
        take(map(_parse_one, jobs))
    return [found[rel] for rel, _, _ in files], len(todo)


# (gaps, documents, each document's bytes by its path) → (outputs, runs, note, extra gaps)
CheckHook = Callable[[list[tuple[Document, Gap]], list[Document], dict[str, bytes]],
                     tuple[dict[str, CheckOutput], int, str, list[tuple[Document, Gap, CheckOutput]]]]
# (documents, each document's bytes by its path, each path's wanted gaps) → model-written gaps
# by check_key and what happened (ankigen.llmcards.CardWriter; `key` says what they depend on)
CardHook = Callable[[list[Document], dict[str, bytes], dict[str, list[Gap]]], "Written"]


def build(paths: list[Path], out: Path, *, include_green: bool = False,
          checks: CheckHook | None = None, progress: Progress | None = None,
          use_cache: bool = True, prune: bool = False, now: int | None = None,
          writer: CardHook | None = None) -> BuildResult:
    """Notes files or vault folders → an .apkg at `out`, identities kept in the vault.
    `writer`: a model words the cards it can (`--llm`); the rest keep their offline card."""
    with _gc_paused():
        return _build(paths, out, include_green=include_green, checks=checks,
                      progress=progress, use_cache=use_cache, prune=prune, now=now,
                      writer=writer)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """A build allocates many small objects and frees few: the cycle collector only costs
    time here (about 5%), so it waits until the build is done (parse workers inherit this)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _build(paths: list[Path], out: Path, *, include_green: bool, checks: CheckHook | None,
           progress: Progress | None, use_cache: bool, prune: bool, now: int | None,
           writer: CardHook | None = None) -> BuildResult:
    t0 = time.perf_counter()
    found = discover_vault(paths)
    root, files, scope = found.root, found.files, found.scope
    contents = read_all(files, include_green)
    vault_key = _vault_key(root, contents, include_green, _checks_key(checks, writer), prune)
    if use_cache:
        same = _unchanged_build(out, vault_key)
        if same is not None:  # nothing the deck depends on changed, and the deck is ours
            return replace(same, seconds=round(time.perf_counter() - t0, 3))
    cache = ParseCache(root, enabled=use_cache)
    timings: dict[str, tuple[float, float]] = {}
    previous = load(root)
    plain = checks is None and writer is None
    # A vault's first plain build (no manifest): each card's identity is final as its file
    # arrives, so identities and the deck's note rows are made while the rest still parse.
    first = _FirstBuild(int(time.time()) if now is None else now) \
        if plain and not previous else None
    t_parse = time.perf_counter()
    prestart = getattr(checks, "prestart", None)

    def started(texts: list[bytes]) -> None:
        if prestart is not None:
            prestart(texts)
        css()  # the deck's style sheet (pygments), made while the workers parse

    parsed_files, parsed = parse_all(contents, cache, include_green, progress,
                                     keep_docs=checks is not None or writer is not None,
                                     started=started, each=first.add if first else None)
    timings["parse"] = (t_parse, time.perf_counter())
    keep = {rel for _, rel in files}
    if not scope.whole:  # the rest of the vault's cache entries stay for its next build
        keep |= {rel for rel in (*cache.data, *cache.cards) if not scope.covers(rel)}
    cards: list[Card] = []
    checks_run, checks_note = 0, "not requested"
    written = None
    if plain:  # the cards as parsed: no document unpickled
        for p in parsed_files:
            cards.extend(p.cards)
    else:
        docs = [p.doc() for p in parsed_files]
        gaps = [(doc, g) for doc in docs for g in doc.gaps if wanted(g, include_green)]
        sources = {doc.path: p.data for p, doc in zip(parsed_files, docs, strict=True)}
        outputs: dict[str, CheckOutput] = {}
        extra: list[tuple[Document, Gap, CheckOutput]] = []
        if checks is not None:
            t_checks = time.perf_counter()
            outputs, checks_run, checks_note, extra = checks(gaps, docs, sources)
            timings["checks"] = (t_checks, time.perf_counter())
            timings.update(getattr(checks, "timings", {}))
        if writer is not None:
            written = writer(docs, sources, {
                doc.path: [g for g in doc.gaps if wanted(g, include_green)] for doc in docs})
        for p, doc in zip(parsed_files, docs, strict=True):
            mine = [g for g in doc.gaps if wanted(g, include_green)]
            mine += [g for d, g, _ in extra if d is doc]  # wrong claims, code that does not run
            if written is None or not any(_check_key(doc, g) in written.gaps for g in mine):
                cards.extend(cache.cards_for(p, doc, mine, outputs))
                continue
            for i, g in enumerate(mine):  # model-written: same anchor, so the same GUID
                k = _check_key(doc, g)
                cards.append(card_for(written.gaps.get(k, g), doc, i, outputs.get(k),
                                      guid=first_guid(doc.path, g.anchor), keep_gap=False))
    images = (_attach_images(cards, root, contents)
              if not plain or any(p.images for p in parsed_files) else Attached(cards))
    cards = images.cards
    # Only what was built is judged: the rest of the vault's notes are neither
    # orphans nor forgotten by --prune, and keep their entries as they are.
    outside = [] if scope.whole else [e for e in previous if not scope.covers(e.file)]
    if outside:
        previous = [e for e in previous if scope.covers(e.file)]
    ahead = None
    orphans: list[Entry] = []
    # Made as the files arrived, fingerprint and manifest too: a first build whose cards
    # came in new-card order (due = their place), which then needs no Wanted or Assigned.
    made_ahead = False
    if first is not None and first.complete(parsed_files):  # what assign would give
        cards, ahead = first.cards, first.rows
        made_ahead = ahead.in_order
        wanted_ids, assigned = ([], []) if made_ahead else first.identities()
        mtimes = [first.now] * len(cards) if made_ahead else [a.mtime for a in assigned]
    else:
        wanted_ids = [Wanted.of(c.file, c.anchor, c.sort_key[1], c.content_hash, c.guid)
                      for c in cards]
        assigned, orphans = assign(wanted_ids, previous, now=now,
                                   reserved=frozenset(e.guid for e in outside))
        cards = [c if c.guid == a.guid else _with_guid(c, a.guid)
                 for c, a in zip(cards, assigned, strict=True)]
        mtimes = [a.mtime for a in assigned]
    # Orphans stay in the manifest (ordinal -1) so they are reported until pruned, and a gap
    # that comes back gets its old note back.
    kept_orphans = [] if prune else [replace(o, ordinal=-1) for o in orphans]

    # New-card order: by sort key, ties in card order (a stable sort of the keys alone);
    # the cards' own order when they came in that order (the rows made ahead say).
    if made_ahead:
        due = list(range(len(cards)))
    else:
        keys = [c.sort_key for c in cards]
        due = [0] * len(cards)
        for n, i in enumerate(sorted(range(len(cards)), key=keys.__getitem__)):
            due[i] = n
    triples = list(zip(cards, mtimes, due, strict=True))
    # Hashed only if a previous deck is there to compare, else while the deck is written
    # (or, by a first build whose cards came in new-card order, as they came).
    fingerprint = functools.cache(first.fingerprint if made_ahead and first is not None
                                  else lambda: str(_fingerprint(triples).hexdigest()))
    wrote_deck = not _up_to_date(out, fingerprint)
    deck_writer: ForkMap | None = None
    with contextlib.ExitStack() as deck:
        if wrote_deck:
            t_deck = time.perf_counter()
            job = (triples, {n: m.data for n, m in images.media.items()},
                   deck.enter_context(writing_to(out)),
                   max(mtimes, default=int(time.time())), ahead)
            # A big deck is written by a fork while this process makes the manifest and
            # saves the cache. Only plain builds: checks and --llm keep threads of their
            # own running (a fork copies the locks they hold, not the threads). Not when
            # all of that was made as the files arrived (made_ahead): the fork's
            # copy-on-write faults would then cost more than the little left beside it
            # (bench vault, in one run: 0.629 s forked, 0.597 s written here).
            if plain and len(cards) >= FORKED_DECK_FROM and not made_ahead:
                from .forked import ForkMap

                deck_writer = deck.enter_context(ForkMap(_write_deck, [job], 1, 1))
            else:
                _write_deck(job)
        fingerprint()
        by_mark: dict[str, int] = {}
        if made_ahead and first is not None:  # (no orphans, nothing outside: a first build)
            manifest, by_mark = first.manifest(), first.by_mark
            statuses = collections.Counter({"new": len(cards)})
        else:
            manifest = manifest_text(manifest_entries(wanted_ids, assigned) + kept_orphans
                                     + outside)
            for c in cards:
                by_mark[c.mark] = by_mark.get(c.mark, 0) + 1
            statuses = collections.Counter(a.status for a in assigned)
        # What the next build compares, with the manifest as this build is about to leave it.
        vault_key = _vault_key(root, contents, include_green, _checks_key(checks, writer),
                               prune, manifest.encode("utf-8")) if use_cache else ""
        cache.save(keep)
        if deck_writer is not None:
            _wait_for(deck_writer)
            deck_writer.close(reap=False)  # it has written the deck: reaped when the build ends
    if wrote_deck:  # (in place now: writing_to renamed it when the block ended)
        timings["deck"] = (t_deck, time.perf_counter())
    save_text(root, manifest)  # only once the deck it describes exists
    warnings = (found.warnings + tuple(w for p in parsed_files for w in p.warnings)
                + tuple(images.warnings))
    model: dict[str, Any] = {}
    if written is not None:
        warnings += tuple(f"--llm: {why}; those gaps keep their offline cards"
                          for why in written.problems)
        model = dict(model=written.note, model_wrote=written.wrote,
                     model_fell_back=written.fell_back, model_calls=written.calls,
                     model_cache_hits=written.cache_hits,
                     model_kept=tuple(f"{o.file}:{o.line}: {o.reason}" for o in written.outcomes
                                      if o.gap is None))
    result = BuildResult(
        out=str(out), written=wrote_deck, files=len(parsed_files), notes=len(cards),
        new=statuses["new"], changed=statuses["changed"], unchanged=statuses["unchanged"],
        by_mark=by_mark,
        orphans=tuple(_orphan(o) for o in orphans), warnings=warnings, checks=checks_note,
        checks_run=checks_run, parsed=parsed, seconds=round(time.perf_counter() - t0, 3),
        timings={k: (round(a - t0, 3), round(b - t0, 3)) for k, (a, b) in timings.items()},
        parsed_files=tuple(parsed_files), media=len(images.media),
        remote_images=images.remote, **model)
    if use_cache and not (written is not None and written.retry):
        # (a build whose model could not be asked about every gap is not remembered: the
        # next one asks again instead of finding this deck up to date)
        _remember(out, fingerprint(), vault_key, result, images)
    forked = sys.modules.get("ankigen.forked")  # imported when something was forked
    if forked is not None:
        forked.reap_ended()
    if LEFT_FOR_EXIT is not None:
        LEFT_FOR_EXIT.append(locals())
    return result


# Set by the `ankigen` process (cli.run), which ends with os._exit right after its build:
# what the build made is left here then, not freed object by object as its frames end
# (~12 ms for 10,000 cards, measured) just before the exit that frees it all at once.
LEFT_FOR_EXIT: list[object] | None = None

FORKED_DECK_FROM = 1000  # notes: a smaller deck is written before forking a writer would pay


def _with_guid(card: Card, guid: str) -> Card:
    """`replace(card, guid=guid)` for many cards (repeated anchors): the same frozen card,
    without replace's field-by-field __init__ (~6 µs a card)."""
    new = object.__new__(Card)
    new.__dict__.update(card.__dict__, guid=guid)
    return new


def _write_deck(job: tuple[list[tuple[Card, int, int]], dict[str, bytes], Path, int,
                          RowsAhead | None]) -> None:
    """The package into a temp file that `deck.writing_to` made and will move into place."""
    triples, media, tmp, stamp, ahead = job
    to_package(triples, media, ahead).write_to_file(str(tmp), timestamp=stamp)


class _FirstBuild:
    """`assign` for a build with no previous manifest, file by file as the parse delivers
    them (in file order): each card keeps the GUID its worker hashed unless an earlier card
    took it, as `assign` gives, and the deck's note rows are made with it. The parse keeps
    both cores busy, so what is done here costs about half what it would after the parse.
    A file with images gives up (attaching them changes the cards): `assign` then runs."""

    def __init__(self, now: int):
        self.now = now
        self.taken: set[str] = set()
        self.cards: list[Card] = []
        self.rows = RowsAhead(now)  # the package's timestamp: the newest mtime, now
        self.files = 0
        self.ok = True
        # Used when the cards came in new-card order (rows.in_order): then each one's due
        # is its place, and the manifest's order (file, ordinal) is theirs too.
        self.by_mark: dict[str, int] = {}
        self._lines: list[str] = []  # the manifest's, one a note
        self._hash: Any = None  # the deck fingerprint, `_fingerprint` of the cards so far

    def add(self, parsed: Parsed) -> None:
        if not self.ok or parsed.images:
            self.ok = False
            return
        self.files += 1
        if self._hash is None:
            self._hash = _fingerprint([])
        now, update, lines, by_mark = self.now, self._hash.update, self._lines, self.by_mark
        mine = []
        for c in parsed.cards:
            guid = fresh_guid(c.file, c.anchor, self.taken, c.guid)
            self.taken.add(guid)
            mine.append(c if c.guid == guid else _with_guid(c, guid))
            update(_fingerprinted(guid, c.content_hash, now, len(lines)))
            lines.append(entry_json(guid, c.file, c.anchor, c.sort_key[1], c.content_hash, now))
            by_mark[c.mark] = by_mark.get(c.mark, 0) + 1
        self.cards.extend(mine)
        self.rows.add(mine, now)

    def identities(self) -> tuple[list[Wanted], list[Assigned]]:
        """What `assign` would have been given and have given (every card new, now)."""
        now = self.now
        return ([Wanted.of(c.file, c.anchor, c.sort_key[1], c.content_hash, c.guid)
                 for c in self.cards], [Assigned.of(c.guid, now, "new") for c in self.cards])

    def fingerprint(self) -> str:
        return str(self._hash.hexdigest()) if self._hash is not None \
            else _fingerprint([]).hexdigest()

    def manifest(self) -> str:
        return manifest_of(self._lines)

    def complete(self, parsed: list[Parsed]) -> bool:
        """Whether every file came through `add`, none with images."""
        return self.ok and self.files == len(parsed)


def _wait_for(writer: ForkMap) -> None:
    """The forked deck writer's end: what it raised is raised here (ForkMap does that)."""
    from .forked import WorkerDied

    try:
        for _ in writer:
            pass
    except WorkerDied:  # killed (out of memory?): writing_to says where it could not write
        raise OSError("the deck writer ended before the deck was written") from None


def _attach_images(cards: list[Card], root: Path, contents: list[tuple[str, bytes, str]]
                   ) -> Attached:
    """Cards whose fields reference images get them resolved and packed (media.py); the
    scan is a substring test per field, so a vault without images pays next to nothing."""
    if not any(has_images(c) for c in cards):
        return Attached(cards)
    return attach(cards, root, {rel: data for rel, data, _ in contents})


def _cards_key(digest: str, doc: Document, outputs: list[CheckOutput | None]) -> str:
    if not any(outputs):
        return digest + ":plain"
    return digest + hashlib.sha256(repr(outputs).encode()).hexdigest()


def _check_key(doc: Document, gap: Gap) -> str:
    return check_key(doc.path, gap)


def _orphan(e: Entry) -> Orphan:
    return Orphan(e.file, e.anchor[:80], f"tag:ankigen::id::{short_id(e.guid)}")


def _fingerprint(triples: list[tuple[Card, int, int]]) -> Any:
    """What the deck holds, hashed (`.hexdigest()`): its templates and style, and each note's
    GUID, content, mtime and new-card order."""
    h = hashlib.sha256(f"{TEMPLATE_VERSION}\x1e{css()}".encode())
    for c, mtime, due in triples:
        h.update(_fingerprinted(c.guid, c.content_hash, mtime, due))
    return h


def _fingerprinted(guid: str, content_hash: str, mtime: int, due: int) -> bytes:
    return f"{guid}\x1f{content_hash}\x1f{mtime}\x1f{due}\x1e".encode()


def _stamp_path() -> Path:
    return cache_dir() / "outputs.json"


def _checks_key(checks: CheckHook | None, writer: CardHook | None = None) -> str:
    """What of the checks a deck depends on: none, or where and how they ran (a hook may say,
    as ankigen.checks.build_hook does: device and time limit); and of the card writer, its
    model and sources."""
    key = "" if checks is None else str(getattr(checks, "key", "checks"))
    return key if writer is None else f"{key}\x1f{getattr(writer, 'key', 'llm')}"


def _vault_key(root: Path, contents: list[tuple[str, bytes, str]], include_green: bool,
               checks: str, prune: bool, manifest: bytes | None = None) -> str:
    """Everything a deck depends on: notes, manifest, parser, templates, options, torch."""
    h = hashlib.sha256(f"{parser_version()}\x1f{TEMPLATE_VERSION}\x1f{include_green}\x1f"
                       f"{checks}\x1f{prune}\x1f{root}".encode())
    if checks:
        from importlib import metadata

        try:
            h.update(metadata.version("torch").encode())
        except metadata.PackageNotFoundError:
            h.update(b"no torch")
    for rel, _, digest in contents:
        h.update(f"{rel}\x1f{digest}\x1e".encode())
    if manifest is not None:  # the manifest's bytes as the build leaves it
        h.update(manifest)
        return h.hexdigest()
    try:
        h.update((root / ".ankigen" / "manifest.json").read_bytes())
    except OSError:
        h.update(b"no manifest")
    return h.hexdigest()


def _stamps() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_stamp_path().read_text("utf-8"))
        return data
    except (OSError, ValueError):
        return {}


def _up_to_date(out: Path, fingerprint: Callable[[], str]) -> bool:
    rec = _stamps().get(str(out.resolve()))
    try:
        st = out.stat()
    except OSError:
        return False
    return rec is not None and rec["deck"] == [fingerprint(), st.st_size, st.st_mtime_ns]


def _unchanged_build(out: Path, vault_key: str) -> BuildResult | None:
    rec = _stamps().get(str(out.resolve()))
    try:
        st = out.stat()
    except OSError:
        return None
    if not rec or rec.get("vault") != vault_key or rec["deck"][1:] != [st.st_size, st.st_mtime_ns]:
        return None
    if rec.get("media_missing") or not media_unchanged(rec.get("media", ())):
        return None  # an image changed, or one not found before may be there now
    r = dict(rec["result"])
    r["orphans"] = tuple(Orphan(**o) for o in r["orphans"])
    r["warnings"] = tuple(r["warnings"])
    r["model_kept"] = tuple(r.get("model_kept", ()))
    if r.get("model"):
        r["model"] = re.sub(r"\d+ calls?, \d+ from cache", "no call: up to date", r["model"])
    r.update(model_calls=0, written=False, new=0, changed=0, unchanged=r["notes"], checks_run=0,
             parsed=0, timings={},
             checks=re.sub(r"\(\d+ run, \d+ cached", "(none run: up to date", r["checks"]))
    return BuildResult(**r)


def _remember(out: Path, fingerprint: str, vault_key: str, result: BuildResult,
              images: Attached) -> None:
    seen = _stamps()
    st = out.stat()
    seen[str(out.resolve())] = {"deck": [fingerprint, st.st_size, st.st_mtime_ns],
                                "vault": vault_key, "result": result.to_dict(),
                                # the image files the deck depends on, as they were
                                "media": [[p.path, p.size, p.mtime_ns] for p in images.probes],
                                "media_missing": images.missing}
    try:
        atomic_write(_stamp_path(), json.dumps(seen).encode())
    except Exception:
        pass
