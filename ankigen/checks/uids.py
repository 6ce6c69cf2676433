"""A uid of its own for each running check, unique across every runner on the machine.

RLIMIT_NPROC is counted per real uid: checks that shared one uid shared one process budget,
so one check's fork bomb made a concurrent honest check fail ("can't start new thread").
Each check now runs as a uid leased from a range reserved for checks (no account has it, so
it owns no file outside the check), and no two running checks hold the same one.

A lease is an exclusive flock on a file named for the uid, in a folder of root's that every
runner on the machine uses: a runner that dies drops its leases with its descriptors, and
its checks died with it (bubblewrap's --die-with-parent, PID namespaces).
"""

from __future__ import annotations

import fcntl
import os
import random
import stat
import threading
import time
from pathlib import Path

from ..errors import CheckError

# Above systemd's container range (524288–1879048191) and below its 0x7FFE0000 block; no
# distribution hands these out. ANKIGEN_CHECK_UIDS=START-END to choose another range.
DEFAULT_RANGE = (0x70A00000, 0x70A00000 + 4095)
FOLDERS = (Path("/run/ankigen-check-uids"), Path("/var/tmp/ankigen-check-uids"))


def uid_range() -> tuple[int, int]:
    raw = os.environ.get("ANKIGEN_CHECK_UIDS", "").strip()
    if not raw:
        return DEFAULT_RANGE
    try:
        start, end = (int(x) for x in raw.split("-", 1))
    except ValueError:
        raise CheckError(f"ANKIGEN_CHECK_UIDS={raw!r}: expected START-END, e.g. "
                         f"{DEFAULT_RANGE[0]}-{DEFAULT_RANGE[1]}") from None
    if not 1000 <= start <= end < 2**31 - 1 or 65534 in range(start, end + 1):
        raise CheckError(f"ANKIGEN_CHECK_UIDS={raw!r}: not a range of unused uids")
    return start, end


def _folder() -> Path:
    """root's lease folder: made 0700; refused when it is not root's alone (a lease that
    anyone could take or fake would let two checks share a uid)."""
    for folder in FOLDERS:
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077:
            return folder
    raise CheckError("no private folder for check uid leases (tried "
                     + ", ".join(str(f) for f in FOLDERS) + ")")


class UidPool:
    """Leases uids to running checks. Thread-safe; one per runner."""

    def __init__(self) -> None:
        self.start, self.end = uid_range()
        self.folder = _folder()
        self._held: dict[int, int] = {}  # uid → the descriptor holding its lock
        self._lock = threading.Lock()

    def acquire(self, wait_s: float = 30.0) -> int:
        size = self.end - self.start + 1
        deadline = time.monotonic() + wait_s
        while True:
            first = random.randrange(size)  # noqa: S311 - spreads runners, not a secret
            for i in range(min(size, 64)):
                uid = self.start + (first + i) % size
                with self._lock:
                    if uid in self._held:
                        continue
                    fd = os.open(self.folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        continue
                    self._held[uid] = fd
                    return uid
            if time.monotonic() > deadline:
                raise CheckError(f"every check uid in {self.start}-{self.end} is in use")
            time.sleep(0.01)

    def release(self, uid: int) -> None:
        with self._lock:
            fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)  # closing drops the lock

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
        for fd in held.values():
            os.close(fd)
