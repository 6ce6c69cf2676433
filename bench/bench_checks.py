"""100 CPU checks through the warm runner vs a fresh `python` per check, in one run.

Targets (issue, item 6): ≥ 50× faster than a fresh interpreter per check; < 3 s on 2 cores.
The baseline runs the same checks as `python -c` two at a time (as many as the runner's
workers), each importing torch afresh. Three readings, all measured here:

- cold: a runner's whole life when no server is up (starting its servers, which import
  torch, plus the checks): what the first run of a session pays;
- kept warm: a later run, as `ankigen check`/`build`/`grade` make it: connecting to the
  keeper the first run left (keeper.py) plus the checks, everything that run pays;
- checks alone: the checks through servers already started.

The keeper lives in a temporary folder of the bench's own and is stopped at the end.

Run: .venv/bin/python bench/bench_checks.py [--n 100] [--baseline-sample N]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ankigen.checks import KeptRunner, Runner, all_checks  # noqa: E402
from ankigen.checks.keeper import stop_keepers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--baseline-sample", type=int, default=0,
                    help="time only this many fresh-python runs and scale (0: all of them)")
    a = ap.parse_args()
    bank = all_checks()
    codes = [bank[i % len(bank)].code for i in range(a.n)]
    load = os.getloadavg()[0]

    t0 = time.perf_counter()
    with Runner(device="cpu", workers=2) as runner:
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = runner.run_many(codes)
        warm = time.perf_counter() - t1
        isolation = runner.isolation
    cold = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.exception for r in results if not r.ok][:3]

    with tempfile.TemporaryDirectory() as folder:
        os.environ["ANKIGEN_RUNTIME_DIR"] = os.path.join(folder, "run")
        try:
            with KeptRunner(device="cpu", workers=2) as first:  # the session's first run
                assert first.started
                first.run_many(codes)
            t3 = time.perf_counter()
            with KeptRunner(device="cpu", workers=2) as later:
                assert not later.started
                connected = time.perf_counter() - t3
                kept_results = later.run_many(codes)
            kept = time.perf_counter() - t3
        finally:
            stop_keepers()
    assert all(r.ok for r in kept_results)

    sample = codes[: a.baseline_sample] if a.baseline_sample else codes
    t2 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        rcs = list(pool.map(lambda c: subprocess.run([sys.executable, "-c", c],
                                                     capture_output=True).returncode, sample))
    base = (time.perf_counter() - t2) * len(codes) / len(sample)
    assert rcs == [0] * len(sample)

    scaled = "" if len(sample) == len(codes) else f" (timed {len(sample)}, scaled)"
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, load average {load:.1f} "
          f"at start; isolation: {', '.join(isolation)}")
    print(f"{a.n} checks, fresh python per check: {base:.1f}s{scaled}")
    print(f"  cold runner      {cold:6.2f}s ({started:.2f}s starting 2 servers + {warm:.2f}s "
          "checks)")
    print(f"  kept warm        {kept:6.2f}s ({connected * 1000:.0f} ms connecting + "
          f"{kept - connected:.2f}s checks, {(kept - connected) / a.n * 1000:.1f} ms a check)")
    for label, took in (("kept warm", kept), ("checks alone", warm), ("cold", cold)):
        ratio = base / took
        print(f"  fresh python / {label:<13} {ratio:6.1f}×  target ≥ 50×  "
              f"{'PASS' if ratio >= 50 else 'MISS'}   {took:5.2f}s  target < 3 s  "
              f"{'PASS' if took < 3 else 'MISS'}")

if __name__ == "__main__":
    main()
