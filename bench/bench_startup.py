"""Start-up, as whole processes, against baselines measured in the same run.

Targets (issue 13, item 1): `ankigen --version` and `ankigen --help` take ≤ 2× `python -c
"import click"`; a one-file `ankigen build --no-checks` takes ≤ 2× a whole bare-genanki
script writing one note.

Every measure is a fresh process, timed from spawn to exit, --repeat times (default 7),
the measures interleaved round by round, and the medians compared. Each build gets a fresh
notes folder (no manifest), an empty cache (ANKIGEN_CACHE_DIR) and no previous deck.
Run: .venv/bin/python bench/bench_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_build import recall_file

BIN = Path(sys.executable).parent
ANKIGEN = BIN / "ankigen"

BARE = """\
import sys

import genanki

model = genanki.Model(1_500_000_001, "bench", fields=[{"name": f"F{i}"} for i in range(5)],
                      templates=[{"name": "c", "qfmt": "{{F0}}", "afmt": "{{F1}}"}])
deck = genanki.Deck(1_500_000_002, "bench")
body = "<div>" + "word " * 60 + "</div>"
deck.add_note(genanki.Note(model=model, fields=["Q0 " + body, body, body, "s0", ""]))
genanki.Package(deck).write_to_file(sys.argv[1])
"""


CPU: dict[str, list[float]] = {}  # user + system seconds of each measured process


def timed(args: list[str], env: dict[str, str], name: str = "") -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    assert os.waitstatus_to_exitcode(status) == 0, args
    CPU.setdefault(name, []).append(usage.ru_utime + usage.ru_stime)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7, help="runs of each measure (median)")
    a = ap.parse_args()
    # As a user meets it: an installed package has its .pyc files. Where this variable is
    # set (some CI and sandbox shells), every run would compile ankigen from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {os.cpu_count()} cores, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    names = ["import click", "ankigen --version", "ankigen --help", "bare genanki, 1 note",
             "ankigen build, 1 file"]
    runs: dict[str, list[float]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        bare = tmpd / "bare.py"
        bare.write_text(BARE, encoding="utf-8")
        note = recall_file(random.Random(42), 0, gaps=3)
        env = dict(os.environ)
        for n in range(a.repeat + 1):  # round 0 warms up (.pyc files) and is not counted
            notes = tmpd / f"notes{n}"
            notes.mkdir()
            (notes / "recall.md").write_text(note, encoding="utf-8")
            build_env = {**env, "ANKIGEN_CACHE_DIR": str(tmpd / f"cache{n}")}
            deck = tmpd / f"deck{n}.apkg"
            runs["import click"].append(
                timed([sys.executable, "-c", "import click"], env, "import click"))
            runs["ankigen --version"].append(
                timed([str(ANKIGEN), "--version"], env, "ankigen --version"))
            runs["ankigen --help"].append(timed([str(ANKIGEN), "--help"], env, "ankigen --help"))
            runs["bare genanki, 1 note"].append(
                timed([sys.executable, str(bare), str(tmpd / f"bare{n}.apkg")], env,
                      "bare genanki, 1 note"))
            runs["ankigen build, 1 file"].append(
                timed([str(ANKIGEN), "build", str(notes / "recall.md"), "-o", str(deck),
                       "--no-checks"], build_env, "ankigen build, 1 file"))
            assert deck.exists(), "the build wrote no deck"
    runs = {k: v[1:] for k, v in runs.items()}  # round 0 was the warm-up
    cpu = {k: min(v[1:]) for k, v in CPU.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"median of {a.repeat} runs each, whole processes")
    for k in names:
        print(f"  {k:24s} median {med[k]:.3f}s   all: " + " ".join(f"{x:.3f}" for x in runs[k])
              + f"   CPU min {cpu[k]:.3f}s")
    rows = [("ankigen --version / import click", med["ankigen --version"] / med["import click"]),
            ("ankigen --help / import click", med["ankigen --help"] / med["import click"]),
            ("build 1 file / bare genanki", med["ankigen build, 1 file"]
             / med["bare genanki, 1 note"])]
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, ratio in rows:
        print(f"  {name:34s} {ratio:5.2f}x   target ≤ 2.00x {'PASS' if ratio <= 2 else 'MISS'}")
    print("  CPU time (less sensitive to other load; not the target's measure): "
          f"--version {cpu['ankigen --version'] / cpu['import click']:.2f}x import click, "
          f"build 1 file {cpu['ankigen build, 1 file'] / cpu['bare genanki, 1 note']:.2f}x "
          "bare genanki")


if __name__ == "__main__":
    main()
