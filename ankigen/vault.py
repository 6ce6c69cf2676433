"""A vault on disk: its root, the files a build was asked for, and a walk that follows
symlinks without leaving the vault or going round in circles.

The root is the nearest folder at or above what was given that holds `.ankigen/` or
`.obsidian/` (else the folder the given paths share), so building one file or one
subfolder keeps its notes' paths, identities and manifest those of the whole vault, and
the build judges only what it was given (its `Scope`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MARKERS = (".ankigen", ".obsidian")
WALK_LIMIT = 200_000  # folders: a bound on any walk, whatever the links do


@dataclass(frozen=True)
class Scope:
    """What a build was given, relative to the vault root: whole folders and single files."""

    folders: tuple[str, ...]  # "" for the root itself, else "sub/dir/"
    files: tuple[str, ...]

    def covers(self, rel: str) -> bool:
        return rel in self.files or any(rel.startswith(f) for f in self.folders)

    @property
    def whole(self) -> bool:
        return "" in self.folders


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding a vault marker, else `start`."""
    for folder in (start, *start.parents):
        if any((folder / m).is_dir() for m in MARKERS):
            return folder
        if (folder / ".git").exists():
            break  # a repository's top: a vault does not reach above it
    return start


def inside(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies under it (both absolute and normalised)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def relative(full: str, root: str) -> str:
    under = root.rstrip(os.sep) + os.sep
    if full.startswith(under):  # the usual case, without relpath's normalising per file
        return full[len(under):].replace(os.sep, "/")
    return os.path.relpath(full, root).replace(os.sep, "/")


def walk(folder: Path, root: Path, keep: Callable[[str], bool],
         warnings: list[str]) -> list[str]:
    """Files under `folder` whose names `keep` accepts, hidden ones skipped, in path order.

    Symlinks are followed when their target lies inside the vault (real paths compared);
    one leading out is skipped with a warning, as is one that loops back into a folder
    above it. A file reached twice (through a link and as itself) is listed once, under
    its own path where it has one."""
    real_root = os.path.realpath(root)
    seen_dirs: set[str] = set()
    files: dict[str, str] = {}  # real path → path as found
    linked_files: list[str] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(str(folder), ())]
    links: list[tuple[str, tuple[str, ...]]] = []
    walked = 0
    while pending or links:
        if not pending:
            links.sort(key=lambda lc: lc[0])  # which link to a folder is walked: the first by name
            link, chain = links.pop(0)
            target = os.path.realpath(link)
            shown = relative(link, str(root))
            if not inside(target, real_root):
                warnings.append(f"{shown}: symlink leads outside the vault: not followed")
            elif target in chain or inside(os.path.realpath(os.path.dirname(link)), target):
                warnings.append(f"{shown}: symlink loops back to a folder above it: not followed")
            elif target not in seen_dirs:
                pending.append((link, chain))
            continue
        here, chain = pending.pop()
        real = os.path.realpath(here)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        walked += 1
        if walked > WALK_LIMIT:
            warnings.append(f"{relative(here, str(root))}: more than {WALK_LIMIT} folders: "
                            "the rest of the vault was not read")
            break
        try:
            entries = list(os.scandir(here))  # order: the result is sorted once, at the end
        except OSError as exc:
            warnings.append(f"{relative(here, str(root))}: cannot read folder: {exc.strerror}")
            continue
        below = (*chain, real)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=not is_link)
            except OSError:
                continue
            if is_link:
                if _points_to_dir(entry.path):
                    links.append((entry.path, below))
                elif keep(entry.name):
                    linked_files.append(entry.path)
            elif is_dir:
                pending.append((entry.path, below))
            elif keep(entry.name) and entry.is_file(follow_symlinks=False):
                # not a link, in a folder whose real path is known: no realpath() per file
                files.setdefault(os.path.join(real, entry.name), entry.path)
    for link in sorted(linked_files):
        target = os.path.realpath(link)
        shown = relative(link, str(root))
        if not inside(target, real_root):
            warnings.append(f"{shown}: symlink leads outside the vault: not read")
        elif target in files:
            continue  # the same note, found as itself: built once
        elif os.path.isfile(target):
            files[target] = link
    return sorted(files.values(), key=lambda f: f.split(os.sep))


def _points_to_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False  # a dangling link: a missing file, reported where it is used


def scope_of(paths: Iterable[Path], root: Path) -> Scope:
    folders: list[str] = []
    files: list[str] = []
    for p in paths:
        rel = relative(os.path.abspath(p), str(root))
        if p.is_dir():
            folders.append("" if rel == "." else rel.rstrip("/") + "/")
        else:
            files.append(rel)
    return Scope(tuple(folders), tuple(files))
