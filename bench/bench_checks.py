"""100 CPU checks through the warm runner vs a fresh `python` per check, in one run.

Targets (issue, item 6): ≥ 50× faster than a fresh interpreter per check; < 3 s on 2 cores.
The baseline runs the same checks as `python -c` two at a time (as many as the runner's
workers), each importing torch afresh. Two ratios are printed, both measured here:

- with start: the runner's whole life (starting its servers, which import torch, plus the
  checks) against the baseline;
- warm: the checks alone, through servers already started (what a build pays per check
  once the runner is up) against the baseline.

Run: .venv/bin/python bench/bench_checks.py [--n 100] [--baseline-sample N]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ankigen.checks import Runner, all_checks  # noqa: E402


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
    total = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.exception for r in results if not r.ok][:3]

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
    print(f"{a.n} checks: runner {total:.2f}s ({started:.2f}s starting 2 servers + "
          f"{warm:.2f}s checks, {warm / a.n * 1000:.1f} ms a check), "
          f"fresh python per check {base:.1f}s{scaled}")
    for label, ratio in (("with start", base / total), ("warm", base / warm)):
        print(f"  fresh python / runner, {label:<10} {ratio:7.1f}×   target ≥ 50×  "
              f"{'PASS' if ratio >= 50 else 'MISS'}")
    print(f"  runner wall time, with start     {total:7.2f}s   target < 3 s  "
          f"{'PASS' if total < 3 else 'MISS'}")


if __name__ == "__main__":
    main()
