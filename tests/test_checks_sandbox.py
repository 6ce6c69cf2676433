"""The sandbox against a hostile notes author (issue 10, items 1-6 and 8-10, the runner's
side): no code outside it, nothing of one check in another, no verdict a later block can
forge, no record that breaks the runner, a process and memory budget per check, and a time
limit per block. Attacks are notes under fixtures/checks/hostile/, run through the runner,
the real `ankigen` command and, for leaks and forgeries, the grader."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
from anki.collection import Collection  # noqa: E402
from anki_helpers import import_apkg, rendered  # noqa: E402

from ankigen.checks import Runner, sandbox, seccomp  # noqa: E402
from ankigen.checks import runner as runner_module  # noqa: E402
from ankigen.checks.keeper import keepers, stop_keepers  # noqa: E402
from ankigen.checks.server import NPROC  # noqa: E402
from ankigen.checks.uids import UidPool, uid_range  # noqa: E402
from ankigen.errors import CheckError, SandboxUnavailable  # noqa: E402
from grader.code import SharedRunner  # noqa: E402
from grader.grade import GradeOptions, grade_recall  # noqa: E402
from grader.recall import recall_from_text  # noqa: E402
from grader.sources import load_sources  # noqa: E402

HOSTILE = Path(__file__).parent / "fixtures" / "checks" / "hostile"
SOURCES = Path(__file__).parent / "fixtures" / "grader" / "sources"
ANKIGEN = Path(sys.executable).parent / "ankigen"
OFFLINE = GradeOptions()


def _code(name: str) -> list[str]:
    """The python blocks of a hostile note, in order."""
    return re.findall(r"```python\n(.*?)```", (HOSTILE / name).read_text(encoding="utf-8"), re.S)


def _check(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ANKIGEN), "check", *map(str, args)], capture_output=True,
                          text=True, timeout=180, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def one():
    """One server: every check is forked where the one before it was."""
    with Runner(timeout_s=5, workers=1) as r:
        yield r


@pytest.fixture(scope="module")
def two():
    with Runner(timeout_s=10, workers=2) as r:
        yield r


# --- 3: nothing of an earlier check in a later one's memory -------------------------------

def test_a_check_finds_nothing_of_the_check_before_it_in_its_own_memory(one):
    """Each check is forked from the same server; the first holds a secret, the second scans
    every writable anonymous page it has. A server that had read the first request (as it
    did before the zygote) hands it to the second: 11 matches were found that way."""
    secret = one.run_notebook(_code("reference-heap-secret.md"))
    assert secret.blocks[0]["statements"][-1]["printed"] == "ZQXJV-42-SECRET\n"
    for scan in (one.run_notebook(_code("reference-heap-scan.md")),
                 one.run("\n".join(_code("reference-heap-scan.md")))):
        printed = scan.blocks[0]["statements"][-1]["printed"] if scan.blocks else scan.stdout
        assert printed == "0\n", (scan.status, scan.exception)


def test_the_cli_runs_a_second_note_where_the_first_ran_and_it_finds_nothing():
    """secret, scan, scan: with two servers the second scan runs on the secret's server."""
    p = _check(HOSTILE / "reference-heap-secret.md", HOSTILE / "reference-heap-scan.md",
               HOSTILE / "reference-heap-scan.md")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("    line 18: verified: 0\n") == 2
    assert "contradicted" not in p.stdout


def test_one_learners_graded_code_never_holds_anothers():
    """Through the grader, as the service would: learner A's session, then learner B's,
    whose code fails (and says what it found) if anything of A's is in its memory."""
    a = ("# Notes\n\nSo, strings. A string can hold anything.\n\n```python\n"
         + _code("reference-heap-secret.md")[0] + "```\n")
    b = ("# Notes\n\nSo, memory. A process can read its own memory.\n\n```python\n"
         + _code("reference-heap-scan.md")[0].replace("print(found)  # prints: 0",
                                                      "assert found == 0, f'found {found}'")
         + "```\n")
    sources = load_sources([SOURCES])
    with SharedRunner(timeout_s=20) as shared:
        reports = [grade_recall(recall_from_text(text), sources, OFFLINE, shared)
                   for text in (a, b, b)]
    assert [run.status for r in reports for p in r.parts for run in p.code] == ["ok"] * 3
    assert "ZQXJV-42-SECRET" not in json.dumps([r.to_dict() for r in reports[1:]])


# --- 4: the kernel keyring ------------------------------------------------------------------

def test_the_keyring_is_closed_to_checks(two):
    """add_key/keyctl carried data from one check to the next, and out to the host."""
    put = two.run("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                  "r = libc.syscall(248, b'user', b'ankigen-leak', b'secret', 6, "
                  "ctypes.c_long(-4))\nprint(r, ctypes.get_errno())")  # KEY_SPEC_USER_KEYRING
    assert (put.status, put.stdout) == ("ok", "-1 1\n")  # EPERM
    get = two.run("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                  "r = libc.syscall(250, 10, ctypes.c_long(-4), b'user', b'ankigen-leak', 0)\n"
                  "print(r, ctypes.get_errno())")  # KEYCTL_SEARCH
    assert (get.status, get.stdout) == ("ok", "-1 1\n")


def test_the_seccomp_filter_denies_namespaces_ptrace_and_bpf_and_allows_threads(two):
    code = ("import ctypes, os, threading, subprocess\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
            "print(libc.syscall(101, 16, 1, 0, 0), ctypes.get_errno())\n"  # ptrace(ATTACH, 1)
            "print(libc.syscall(321, 0, 0, 0), ctypes.get_errno())\n"  # bpf
            "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout)")
    res = two.run(code)
    assert (res.status, res.stdout) == ("ok", "-1 1\n-1 1\n-1 1\nthread\nchild\n\n"), res.exception


def test_the_filter_is_built_for_known_machines_only():
    assert len(seccomp.program("x86_64")) % 8 == 0 and len(seccomp.program("aarch64")) % 8 == 0
    with pytest.raises(ValueError, match="^no seccomp filter for riscv64$"):
        seccomp.program("riscv64")


# --- 5: verdicts a later block cannot change -------------------------------------------------

REWRITE_LINES = ["  block lines 4-5: ok\n    line 5: contradicted: 4 (it printed '3')\n",
                 "  block lines 9-9: error — ZeroDivisionError: division by zero\n",
                 "  block lines 64-65: ok\n    line 65: verified: 5\n"]


def test_a_later_block_cannot_rewrite_an_earlier_result_nor_forge_one():
    """Through gc (no frame inspection needed), through the record pipe with the nonce read
    from the runner's frames, and with a thread printing into later statements: the first
    block stays contradicted, the second an error, and the value claim holds on the value."""
    p = _check(HOSTILE / "reference-rewrite-earlier.md")
    for line in REWRITE_LINES:
        assert line in p.stdout, p.stdout
    assert p.returncode == 4  # a block raised (and a claim is contradicted)
    assert p.stderr.endswith("6 blocks (1 error, 5 ok); claims: 1 contradicted, 1 verified\n")


def test_the_grader_sees_the_earlier_block_fail_whatever_the_later_one_does():
    blocks = _code("reference-rewrite-earlier.md")
    text = ("# Notes\n\nSo, arithmetic. Dividing by zero raises.\n\n"
            + "".join(f"```python\n{b}```\n\n" for b in blocks))
    with SharedRunner(timeout_s=10) as shared:
        report = grade_recall(recall_from_text(text), load_sources([SOURCES]), OFFLINE, shared)
    runs = [run for p in report.parts for run in p.code]
    assert [r.status for r in runs] == ["ok", "error", "ok", "ok", "ok", "ok"]
    assert runs[1].detail == "ZeroDivisionError: division by zero"


# --- 6: records the runner cannot use --------------------------------------------------------

def test_malformed_and_deeply_nested_records_are_a_crash_not_a_traceback(tmp_path):
    p = _check(HOSTILE / "reference-malformed-records.md")
    assert p.returncode == 4 and "Traceback" not in p.stderr, p.stderr
    assert "  block lines 4-20: crashed — " in p.stdout
    assert "  block lines 24-24: not run\n" in p.stdout
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(HOSTILE / "reference-malformed-records.md", vault)
    shutil.copy(HOSTILE / "reference-rewrite-earlier.md", vault)
    out = tmp_path / "deck.apkg"
    b = subprocess.run([str(ANKIGEN), "build", str(vault), "-o", str(out)], capture_output=True,
                       text=True, timeout=180)
    assert b.returncode == 0 and "Traceback" not in b.stderr, b.stderr
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        import_apkg(col, out)
        backs = [a for _guid, _q, a in rendered(col)]
        # The rewrite note's first two blocks, as they really ran: its contradicted claim is
        # a card; its `1 / 0` block still failed (counted on the checks: line, no card: a
        # reference note's raising block never is one, issue 12); nothing from the note
        # whose records were malformed (a crash says nothing about the note).
        assert len(backs) == 1
        assert any("It prints: 3" in a for a in backs)
    finally:
        col.close()
    assert "reference notes' code: 8 blocks (1 crashed, 1 error, 1 not run, 5 ok)" in \
        b.stdout + b.stderr, b.stdout + b.stderr


# --- 8: a uid and a process budget of its own per check --------------------------------------

BOMB = """
import os, time
n = 0
while True:
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    except OSError:
        break
print(os.getuid(), n)
time.sleep(3)
"""

HONEST = """
import os, threading, time
time.sleep(1)
threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(30)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(os.getuid(), "30 threads")
"""


def test_a_fork_bomb_does_not_starve_an_honest_check_beside_it(two):
    bomb, honest = two.run_many([BOMB, HONEST])
    assert honest.status == "ok", honest.exception
    bomb_uid, forks = bomb.stdout.split()
    honest_uid, _ = honest.stdout.split(maxsplit=1)
    assert honest.stdout.endswith(" 30 threads\n")
    assert 0 < int(forks) < NPROC and bomb_uid != honest_uid
    assert {int(bomb_uid), int(honest_uid)} <= set(range(uid_range()[0], uid_range()[1] + 1))


def test_uid_leases_are_unique_across_runners_and_come_back(monkeypatch):
    monkeypatch.setenv("ANKIGEN_CHECK_UIDS", f"{uid_range()[0]}-{uid_range()[0] + 3}")
    a, b = UidPool(), UidPool()  # two runners (keepers) on one machine
    try:
        taken = [a.acquire(), b.acquire(), a.acquire(), b.acquire()]
        assert len(set(taken)) == 4
        with pytest.raises(CheckError, match=r"^every check uid in \d+-\d+ is in use$"):
            b.acquire(wait_s=0.1)
        a.release(taken[0])
        assert b.acquire(wait_s=1) == taken[0]
    finally:
        a.close()
        b.close()


def test_a_bad_uid_range_is_one_line(monkeypatch):
    monkeypatch.setenv("ANKIGEN_CHECK_UIDS", "0-100")
    with pytest.raises(CheckError, match=r"^ANKIGEN_CHECK_UIDS='0-100': not a range of unused uids$"):
        uid_range()


# --- 9: memory bounded per check, all its processes together ---------------------------------

def test_memory_is_bounded_for_the_check_as_a_whole(monkeypatch):
    """Three forks of 300 MB each: each is far under any per-process limit; together they
    pass the check's 600 MiB, and the check is stopped. One of 200 MB runs."""
    monkeypatch.setenv("ANKIGEN_CHECK_MEMORY_MB", "600")
    code = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n"
            "        block = b'x' * (300 * 2**20)\n        time.sleep(20)\n        os._exit(0)\n"
            "time.sleep(20)")
    with Runner(timeout_s=15, workers=1) as r:
        t0 = time.monotonic()
        res = r.run(code)
        assert res.status == "crashed"
        assert res.exception == "the check used more than 600 MiB of memory and was stopped"
        assert time.monotonic() - t0 < 10
        ok = r.run("block = b'x' * (200 * 2**20)\nprint(len(block) // 2**20)")
        assert (ok.status, ok.stdout) == ("ok", "200\n"), ok.exception


def test_a_bad_memory_bound_is_one_line(monkeypatch):
    monkeypatch.setenv("ANKIGEN_CHECK_MEMORY_MB", "lots")
    with pytest.raises(CheckError, match=r"^ANKIGEN_CHECK_MEMORY_MB='lots': expected megabytes$"):
        runner_module.memory_bound()


# --- 10: a time limit per block ---------------------------------------------------------------

def test_each_block_has_its_own_limit_and_the_message_names_it(one):
    """A note's limit was multiplied by its blocks (100 blocks held a server 1,000 s)."""
    t0 = time.monotonic()
    res = one.run_notebook(_code("reference-hang.md"), timeout_s=1)
    took = time.monotonic() - t0
    assert (res.status, res.exception) == ("timeout",
                                           "block 2 ran past its 1 s limit and was stopped")
    assert len(res.blocks) == 1 and res.blocks[0]["ok"]
    assert took < 2.5, took  # one block's limit and the first block, not 3 × 1 s
    slow = one.run_notebook(["import time\ntime.sleep(0.6)"] * 3, timeout_s=1)
    assert slow.status == "ok" and len(slow.blocks) == 3  # 1.8 s in all: each within its own


# --- 12: output written past sys.stdout; a value too big to print ----------------------------

def test_output_to_fd_1_and_from_a_subprocess_counts_and_a_huge_value_is_cut():
    p = _check(HOSTILE / "reference-fd-output.md")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "    line 7: verified: 7\n    line 8: verified: from a subprocess\n" in p.stdout
    assert "  block lines 12-12: ok\n" in p.stdout


def test_a_huge_value_is_cut_not_a_crash(one):
    res = one.run_notebook(["list(range(200000))"])
    value = res.blocks[0]["statements"][0]["value"]
    assert res.status == "ok" and len(value) == 4001 and value.endswith("…")


# --- 1: nothing beside the notes is imported outside the sandbox -----------------------------

def test_a_module_beside_the_notes_is_never_imported_by_the_keeper(tmp_path, monkeypatch):
    """`ankigen check` run from a folder holding argparse.py: the keeper (outside bubblewrap,
    as this user) used to import it and serve every later run with it."""
    folder = tmp_path / "vault"
    shutil.copytree(HOSTILE / "shadowing", folder)
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "30")
    monkeypatch.setenv("ANKIGEN_RUNTIME_DIR", str(tmp_path / "run"))
    try:
        p = _check("reference.md", cwd=folder)
        assert p.returncode == 0, p.stdout + p.stderr
        assert not (folder / "IMPORTED").exists()
        (keeper,) = keepers()
        assert os.readlink(f"/proc/{keeper['pid']}/cwd") == "/"
        assert b"\0-P\0" in Path(f"/proc/{keeper['pid']}/cmdline").read_bytes()
    finally:
        stop_keepers()


# --- 2: fail closed ---------------------------------------------------------------------------

def test_no_bubblewrap_no_run(monkeypatch, tmp_path):
    (tmp_path / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without bwrap
    with pytest.raises(SandboxUnavailable) as caught:
        Runner(workers=1)
    assert str(caught.value) == (
        "checks not run: bubblewrap is not installed; install bubblewrap (apt-get install "
        "bubblewrap), or pass --unsafe-no-sandbox to run them unsandboxed (only for notes you "
        "trust)")
    with Runner(workers=1, unsandboxed=True) as r:  # the loud opt-out: no sandbox at all
        assert sandbox.UNSANDBOXED in r.isolation and not sandbox.complete(r.isolation)
        assert sandbox.summary(r.isolation).startswith("isolation: NONE")
        assert r.run("print(1)").stdout == "1\n"


def test_not_root_and_not_linux_are_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(runner_module.os, "geteuid", lambda: 1000)
    assert runner_module.sandbox_prerequisites() == (
        "the sandbox gives each check a uid of its own, which needs root (this user is uid "
        "1000)")
    monkeypatch.setattr(runner_module.sys, "platform", "darwin")
    with pytest.raises(SandboxUnavailable, match="^checks not run: the sandbox needs Linux "
                       r"\(this is darwin\); pass --unsafe-no-sandbox to run them"):
        Runner(workers=1)


def test_a_missing_layer_refuses_the_whole_runner(monkeypatch):
    """Any layer missing is no sandbox: here the seccomp probe fails."""
    real = runner_module._Server.wait_ready

    def without_seccomp(self):
        server = real(self)
        server.info = {**(server.info or {}), "seccomp": False}
        return server

    monkeypatch.setattr(runner_module._Server, "wait_ready", without_seccomp)
    with pytest.raises(SandboxUnavailable, match=re.escape(
            f"checks not run: the sandbox is incomplete here (missing: {sandbox.SECCOMP}); "
            "pass --unsafe-no-sandbox")):
        Runner(workers=1)


def test_a_sandboxed_server_that_fails_never_falls_back_to_none(monkeypatch):
    def slow(self):
        self.close()
        raise CheckError("the check server did not start inside bubblewrap")

    monkeypatch.setattr(runner_module._Server, "wait_ready", slow)
    with pytest.raises(CheckError, match="^the check server did not start inside bubblewrap$"):
        Runner(workers=1)


def test_a_build_says_the_runners_reason_and_no_unrelated_install_hint(monkeypatch):
    """The build's and the grader's line is the runner's refusal without its lead: a machine
    that has bubblewrap but not root is not told to install bubblewrap."""
    from ankigen.checks.cards import refusal

    monkeypatch.setattr(runner_module.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable) as caught:
        Runner(workers=1)
    assert refusal(caught.value) == (
        "the sandbox gives each check a uid of its own, which needs root (this user is uid "
        "1000); pass --unsafe-no-sandbox to run them unsandboxed (only for notes you trust)")
