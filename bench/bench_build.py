"""Build speed, as ratios against bare genanki measured in the same run.

Targets (issue 3): a 1,000-file / 10,000-gap vault builds cold in ≤ 4× the time bare
genanki takes to write as many notes; the deck-writing stage alone ≤ 1.5×; an unchanged
rebuild ≥ 5× faster than a cold one; peak memory < 300 MB.

Run: .venv/bin/python bench/bench_build.py [--files 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ["tensors", "autograd", "optimizers", "convolutions", "pooling", "dropout",
          "batch norm", "RNNs", "LSTMs", "attention", "embeddings", "schedulers"]
TERMS = ["nn.Parameter", "TensorDataset", "DataLoader", "nn.Flatten", "torch.no_grad",
         "nn.Sequential", "optimizer.zero_grad", "nn.MSELoss", "nn.LSTM", "model.eval"]
FILLER = ("The learner explains what they remember about the {t}, mostly right but vague "
          "in places, with a few details about shapes, dtypes and where gradients go.")


def recall_file(rng: random.Random, n: int, gaps: int = 10) -> str:
    """A recall session with `gaps` gaps in the real notes' style."""
    topic = rng.choice(TOPICS)
    out = [f"# Goal\n\nRecall chapter {n % 19 + 1}, {topic}.\n\n# Notes\n",
           f"So, chapter {n % 19 + 1} is about {topic}. " + FILLER.format(t=topic) + "\n"]
    for g in range(gaps):
        kind = g % 5
        filler = FILLER.format(t=f"{topic} detail {g}") + "\n"
        if kind == 0:
            out.append(filler + f"\n🟡 => fine, but you skipped {rng.choice(TOPICS)} ({n}.{g}).\n")
        elif kind == 1:
            out.append(filler + f"\n🔴 => that is wrong for case {n}.{g}.\n=> it works the "
                       f"other way round.\n> The book says so, section {g}.\n")
        elif kind == 2:
            out.append(f"I forgot the name of that class number {n}.{g} => the name is "
                       f"{rng.choice(TERMS)} => Good name!\n")
        elif kind == 3:
            out.append(f"For batching {n}.{g} we wrap tensors in a class called "
                       f"{rng.choice(TERMS).split('.')[-1]} (looked up the name.)\n")
        else:
            out.append(f"```python\nx = torch.ones({g + 1})\nprint(x.sum())  # prints: "
                       f"tensor({g + 1}.)\n```\n\nMomentum {n}.{g}, 🟡 (forgot the rest) "
                       "and so on.\n")
        out.append("\n")
        if g == gaps // 2:
            out.append("---\n\n")
    text = "\n".join(out)
    if n % 7 == 0:  # some files arrive as cp1252 mojibake
        text = "".join(ch.encode().decode("cp1252", "ignore") if ch in "🟡🔴—" else ch
                       for ch in text)
    return text


def make_vault(root: Path, files: int) -> None:
    rng = random.Random(42)
    for n in range(files):
        sub = root / f"ch{n % 10:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"recall-{n:04d}.md").write_text(recall_file(rng, n), encoding="utf-8")


def bare_genanki(notes: int, out: Path) -> float:
    import genanki

    model = genanki.Model(1_500_000_001, "bench", fields=[{"name": f"F{i}"} for i in range(5)],
                          templates=[{"name": "c", "qfmt": "{{F0}}", "afmt": "{{F1}}"}])
    t0 = time.perf_counter()
    deck = genanki.Deck(1_500_000_002, "bench")
    body = "<div>" + "word " * 60 + "</div>"
    for i in range(notes):
        deck.add_note(genanki.Note(model=model, fields=[f"Q{i} {body}", body, body, f"s{i}", ""]))
    genanki.Package(deck).write_to_file(str(out))
    return time.perf_counter() - t0


def run_child(args: list[str], env: dict[str, str]) -> str:
    """Each measured build runs in a fresh interpreter: cold means cold."""
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                          text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def child(mode: str, vault: Path, out: Path) -> None:
    from ankigen.build import build
    from ankigen.deck import to_package, write_package

    t0 = time.perf_counter()
    result = build([vault], out)
    total = time.perf_counter() - t0
    stage = 0.0
    if mode == "cold":  # the deck-writing stage alone, on the cards this build made
        import pickle

        from ankigen.cards import card_for
        from ankigen.identity import load

        guids = {(e.file, e.anchor): (e.guid, e.mtime) for e in load(vault)}
        triples = []
        for doc in result.docs:
            for i, g in enumerate(doc.gaps):
                c = card_for(g, doc, i)
                guid, mtime = guids[(c.file, c.anchor)]
                triples.append((c.__class__(**{**c.__dict__, "guid": guid}), mtime, len(triples)))
        del pickle
        t1 = time.perf_counter()
        write_package(to_package(triples), out.with_suffix(".stage.apkg"), timestamp=time.time())
        stage = time.perf_counter() - t1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{total:.4f} {stage:.4f} {result.notes} {result.written} {peak_mb:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--child", nargs=3)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], Path(a.child[1]), Path(a.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        vault = tmpd / "vault"
        make_vault(vault, a.files)
        env = {**os.environ, "ANKIGEN_CACHE_DIR": str(tmpd / "cache")}
        cold = run_child(["--child", "cold", str(vault), str(tmpd / "deck.apkg")], env).split()
        notes = int(cold[2])
        base = bare_genanki(notes, tmpd / "bare.apkg")
        warm = run_child(["--child", "warm", str(vault), str(tmpd / "deck.apkg")], env).split()
        cold_s, stage_s, peak = float(cold[0]), float(cold[1]), float(cold[4])
        warm_s = float(warm[0])
        rows = [
            ("cold build / bare genanki", cold_s / base, "≤ 4.0", cold_s / base <= 4.0),
            ("deck writing / bare genanki", stage_s / base, "≤ 1.5", stage_s / base <= 1.5),
            ("cold / unchanged rebuild", cold_s / warm_s, "≥ 5.0", cold_s / warm_s >= 5.0),
            ("peak memory MB (cold build)", peak, "< 300", peak < 300),
        ]
        print(f"vault: {a.files} files, {notes} notes; bare genanki {base:.2f}s, cold build "
              f"{cold_s:.2f}s, deck stage {stage_s:.2f}s, unchanged rebuild {warm_s:.3f}s "
              f"(rewrote deck: {warm[3]})")
        for name, value, target, ok in rows:
            print(f"  {name:32s} {value:8.2f}   target {target:6s} {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
