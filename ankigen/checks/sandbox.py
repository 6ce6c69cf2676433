"""What "a sandbox" means for checks, and how its state is named to the user.

A runner lists the layers in force in `RunResult.isolation` (and `runner.isolation`). Checks
run only when every layer of REQUIRED is there, or when the caller opted out explicitly
(`--unsafe-no-sandbox`, for notes the user trusts); docs/checks.md, "Threat model", says
what each layer stops.
"""

from __future__ import annotations

from collections.abc import Sequence

BUBBLEWRAP = "bubblewrap: own network, PID and mount namespaces, no home"
NAMESPACES = "own PID, network, IPC and mount namespaces and /proc per check"
UID = "own uid and process budget per check"
SECCOMP = "seccomp filter (no keyring, no new namespaces, no bpf, no ptrace)"
RLIMITS = "rlimits (CPU, file size, address space, processes)"
MEMORY = "memory bound per check"
PRIVATE_TMP = "private /tmp per check"
ZYGOTE = "clean zygote (no earlier check's data in memory)"

REQUIRED = (BUBBLEWRAP, NAMESPACES, UID, SECCOMP, RLIMITS, MEMORY, PRIVATE_TMP, ZYGOTE)
UNSANDBOXED = "UNSANDBOXED (--unsafe-no-sandbox)"
OPT_OUT_FLAG = "--unsafe-no-sandbox"
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap)"


def missing(isolation: Sequence[str]) -> tuple[str, ...]:
    """The required layers a runner's isolation lacks."""
    have = set(isolation)
    return tuple(layer for layer in REQUIRED if layer not in have)


def complete(isolation: Sequence[str]) -> bool:
    return not missing(isolation) and UNSANDBOXED not in isolation


def summary(isolation: Sequence[str]) -> str:
    """One line for the plain output of `check`, `build` and `grade`: the isolation in force."""
    if UNSANDBOXED in isolation:
        return ("isolation: NONE — the notes' code ran unsandboxed as this user "
                f"({OPT_OUT_FLAG})")
    if complete(isolation):
        return ("isolation: sandboxed (bubblewrap; own namespaces, uid, process budget, "
                "memory bound and seccomp filter per check)")
    return "isolation: incomplete, missing " + "; ".join(missing(isolation))
