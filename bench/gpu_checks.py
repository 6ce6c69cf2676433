"""The check runner's CUDA path on a GPU machine, as docs/checks.md ("Devices") reports it.

Run on a machine with an NVIDIA GPU, as root, with bubblewrap installed:
    python bench/gpu_checks.py            # also writes gpu.json to $OUT (or /tmp)
It starts a sandboxed runner on cuda (or says why it cannot, and then runs unsandboxed),
runs a probe, 100 bank checks, a check that asks for 60 % of the GPU, a CUDA error (the
servers are replaced) and a notebook with autograd, and prints what each gave.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["ANKIGEN_KEEP_WARM"] = "0"
os.environ.setdefault("ANKIGEN_SERVER_LOG", os.path.join(os.environ.get("OUT", "/tmp"),
                                                         "server.log"))

from ankigen.checks import Runner, all_checks  # noqa: E402
from ankigen.errors import SandboxUnavailable  # noqa: E402

OUT: dict[str, Any] = {}
PROBE = ("import torch, re\nprint(DEVICE, torch.cuda.is_available())\n"
         "x = torch.ones(3, device=DEVICE)\nprint(x.sum().item(), x.device)\n"
         "pss = re.search(r'Pss:\\s+(\\d+)', open('/proc/self/smaps_rollup').read())\n"
         "print(pss.group(1), 'kB pss')\n")
HOG = ("import torch\nfree, total = torch.cuda.mem_get_info()\n"
       "x = torch.empty(int(total * 0.6), dtype=torch.uint8, device='cuda')\nprint('allocated')")
CUDA_ERROR = "print(DEVICE)\nraise RuntimeError('CUDA error: an illegal memory access was encountered')"
NOTEBOOK = ["import torch\nw = torch.ones(3, device=DEVICE, requires_grad=True)",
            "(w * 2).sum().backward()\nw.grad"]


def log(key: str, value: Any) -> None:
    OUT[key] = value
    print(key, "=", json.dumps(value)[:1500], flush=True)


def session(tag: str, **options: Any) -> None:
    t0 = time.time()
    with Runner(device="cuda", timeout_s=60, workers=2, **options) as r:
        log(f"{tag}.start_s", round(time.time() - t0, 2))
        log(f"{tag}.isolation", list(r.isolation))
        log(f"{tag}.device_label", r.device_label)
        p = r.run(PROBE)
        log(f"{tag}.probe", [p.status, p.stdout, p.exception])
        bank = all_checks()
        codes = [bank[i % len(bank)].code for i in range(100)]
        t1 = time.time()
        res = r.run_many(codes)
        log(f"{tag}.bank100_s", round(time.time() - t1, 2))
        log(f"{tag}.bank_status", {s: sum(x.status == s for x in res) for s in {x.status for x in res}})
        log(f"{tag}.bank_failures", [(bank[i % len(bank)].id, x.status, x.exception)
                                     for i, x in enumerate(res) if not x.ok][:8])
        h = r.run(HOG)
        log(f"{tag}.gpu_hog", [h.status, h.stdout, (h.exception or "")[:300]])
        e = r.run(CUDA_ERROR)
        log(f"{tag}.cuda_error", [e.status, e.stdout])
        again = r.run(PROBE)
        log(f"{tag}.after_replace", [again.status, again.stdout, again.exception])
        nb = r.run_notebook(NOTEBOOK)
        log(f"{tag}.notebook", [nb.status, [b.get("statements") for b in nb.blocks]])


def main() -> None:
    import torch

    log("host", {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                 "uid": os.getuid(), "kernel": os.uname().release})
    try:
        session("sandboxed")
    except SandboxUnavailable as exc:
        log("sandboxed.refused", str(exc))
        try:
            session("unsandboxed", unsandboxed=True)
        except Exception:  # noqa: BLE001 - reported, not raised
            log("unsandboxed.error", traceback.format_exc())
    Path(os.environ.get("OUT", "/tmp"), "gpu.json").write_text(json.dumps(OUT, indent=1))


if __name__ == "__main__":
    main()
