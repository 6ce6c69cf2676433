"""A seccomp filter for the process that runs a check, built as classic BPF with ctypes.

It denies what a check never needs and what would let it reach past its namespaces: the
kernel keyring (add_key/request_key/keyctl carry data from one check to the next and out to
any process of the same uid), new namespaces and mounts, ptrace and cross-process memory,
bpf, perf, userfaultfd, io_uring, module and kexec loading. Denied calls fail with EPERM;
clone3 fails with ENOSYS so that libc falls back to clone, whose flags the filter can read
(a clone that asks for a namespace is denied). On x86-64 the x32 ABI is denied whole; a
call from any other architecture kills the process.

Installed with no_new_privs, after the check's uid is dropped, just before its code runs:
nothing the check does afterwards can remove it, and its children inherit it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
X32_BIT = 0x40000000
NAMESPACE_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                   | 0x20000000 | 0x40000000 | 0x00000080)  # NS, CGROUP, UTS, IPC, USER, PID, NET, TIME

# (AUDIT_ARCH, clone, clone3, {denied syscall numbers})
_X86_64 = (0xC000003E, 56, 435, {
    248, 249, 250,  # add_key, request_key, keyctl
    101, 310, 311,  # ptrace, process_vm_readv/writev
    272, 308, 165, 166, 155,  # unshare, setns, mount, umount2, pivot_root
    428, 429, 430, 431, 432, 433, 442,  # open_tree … fspick, mount_setattr
    321, 298, 323,  # bpf, perf_event_open, userfaultfd
    425, 426, 427,  # io_uring
    175, 313, 176, 246, 320,  # modules, kexec
    303, 304, 163, 167, 168, 169, 103, 179, 212, 153,  # handles, acct, swap, reboot, syslog …
})
_AARCH64 = (0xC00000B7, 220, 435, {
    217, 218, 219,
    117, 270, 271,
    97, 268, 40, 39, 41,
    428, 429, 430, 431, 432, 433, 442,
    280, 241, 282,
    425, 426, 427,
    105, 273, 106, 104, 294,
    264, 265, 89, 224, 225, 142, 116, 60, 18, 58,
})
ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes:
    """The filter as a sequence of struct sock_filter; ValueError on an unknown machine."""
    machine = (machine or platform.machine()).lower()
    if machine not in ARCHES:
        raise ValueError(f"no seccomp filter for {machine}")
    arch, clone, clone3, denied = ARCHES[machine]
    deny = RET_ERRNO | errno.EPERM
    body = [_ins(LD_W_ABS, 0)]  # seccomp_data.nr
    if arch == _X86_64[0]:
        body.append(_ins(JSET_K, X32_BIT, 0, 1))
        body.append(_ins(RET_K, deny))
    for nr in sorted(denied):
        body.append(_ins(JEQ_K, nr, 0, 1))
        body.append(_ins(RET_K, deny))
    body.append(_ins(JEQ_K, clone3, 0, 1))
    body.append(_ins(RET_K, RET_ERRNO | errno.ENOSYS))
    body.append(_ins(JEQ_K, clone, 0, 3))
    body.append(_ins(LD_W_ABS, 16))  # args[0], low half: the clone flags
    body.append(_ins(JSET_K, NAMESPACE_FLAGS, 0, 1))
    body.append(_ins(RET_K, deny))
    body.append(_ins(RET_K, RET_ALLOW))
    head = [_ins(LD_W_ABS, 4),  # seccomp_data.arch
            _ins(JEQ_K, arch, 1, 0),
            _ins(RET_K, RET_KILL_PROCESS)]
    return b"".join(head + body)


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install() -> None:
    """Apply the filter to this process (and all it starts). Raises OSError when it cannot."""
    code = program()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"no_new_privs: {os.strerror(err)}")
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _Prog(len(code) // 8, ctypes.cast(buf, ctypes.c_char_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
