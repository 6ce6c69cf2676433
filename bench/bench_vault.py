"""Vault walking and images: what they add to a build, as ratios measured in the same run.

1. Finding the notes: vault.walk (symlinks followed inside the vault, loops caught) against
   the plain os.walk it replaced, on the same generated vault. Target ≤ 1.5×.
2. Images on cards: a cold build, and an unchanged rebuild (which stats each packed image
   to stay correct), of the same vault with one image per file against the vault without
   them. Targets: cold ≤ 1.3×, unchanged rebuild ≤ 1.5× (both still small absolute times).

Each measure is taken --repeat times, interleaved, and the medians compared.
Run: .venv/bin/python bench/bench_vault.py [--files 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_build import make_vault  # noqa: E402


def old_walk(folder: Path) -> list[str]:
    """build._notes_under before vault.walk: os.walk, links to folders never followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in (".md",
                                                                                  ".markdown"):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                found.append(full)
    return sorted(found, key=lambda f: f.split(os.sep))


def png(seed: int) -> bytes:
    raw = b"\x00" + struct.pack(">I", seed)[1:]
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def with_images(vault: Path) -> None:
    """One image per file, half by relative path, half as Obsidian embeds found by name."""
    (vault / "attachments").mkdir()
    for n, note in enumerate(sorted(vault.rglob("*.md"))):
        name = f"figure-{n:04d}.png"
        if n % 2:
            (vault / "attachments" / name).write_bytes(png(n))
            ref = f"![[{name}|200]]"
        else:
            (note.parent / name).write_bytes(png(n))
            ref = f"![figure]({name})"
        text = note.read_text("utf-8").replace("> The book says so,", f"> {ref} The book says so,",
                                               1)
        note.write_text(text, "utf-8")


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from ankigen.build import build
    from ankigen.vault import walk

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        plain, imaged = tmpd / "plain", tmpd / "imaged"
        make_vault(plain, a.files)
        shutil.copytree(plain, imaged)
        with_images(imaged)
        runs: dict[str, list[float]] = {k: [] for k in (
            "os.walk", "vault.walk", "cold plain", "cold images", "warm plain", "warm images")}
        notes = media = 0
        for n in range(a.repeat):
            runs["os.walk"].append(timed(lambda: old_walk(plain)))
            runs["vault.walk"].append(timed(lambda: walk(plain, plain, lambda s: s.endswith(
                ".md"), [])))
            for kind, vault in (("plain", plain), ("images", imaged)):
                shutil.rmtree(vault / ".ankigen", ignore_errors=True)
                os.environ["ANKIGEN_CACHE_DIR"] = str(tmpd / f"cache-{kind}-{n}")
                deck = tmpd / f"{kind}-{n}.apkg"
                t0 = time.perf_counter()
                cold = build([vault], deck)
                runs[f"cold {kind}"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                warm = build([vault], deck)
                runs[f"warm {kind}"].append(time.perf_counter() - t0)
                assert cold.written and not warm.written, (cold, warm)
                if kind == "images":
                    notes, media = cold.notes, cold.media
                    assert not cold.warnings, cold.warnings[:3]
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"vault: {a.files} files, {notes} notes, {media} images packed; "
              f"median of {a.repeat} runs each")
        for k, v in runs.items():
            print(f"  {k:12s} median {med[k] * 1000:8.1f} ms   all: "
                  + " ".join(f"{x * 1000:.1f}" for x in v))
        rows = [("vault.walk / os.walk", med["vault.walk"] / med["os.walk"], 1.5),
                ("cold: images / plain", med["cold images"] / med["cold plain"], 1.3),
                ("unchanged: images / plain", med["warm images"] / med["warm plain"], 1.5)]
        for name, ratio, target in rows:
            print(f"  {name:28s} {ratio:6.2f}x  target ≤ {target}  "
                  f"{'PASS' if ratio <= target else 'MISS'}")


if __name__ == "__main__":
    main()
