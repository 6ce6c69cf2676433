"""build.read_all: each file's bytes as on disk, and one line naming the file it could not read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ankigen.build import read_all
from ankigen.errors import InputError


def test_bytes_as_on_disk_small_and_bigger_than_one_read(tmp_path: Path) -> None:
    small = tmp_path / "a.md"
    small.write_bytes(b"# A\n\nprose\n")
    big = tmp_path / "b.md"
    big.write_bytes(b"x" * ((1 << 20) * 2 + 7))  # three reads of at most 1 MiB
    empty = tmp_path / "c.md"
    empty.write_bytes(b"")
    got = read_all([(small, "a.md"), (big, "b.md"), (empty, "c.md")], include_green=False)
    assert [(rel, data) for rel, data, _ in got] == [
        ("a.md", small.read_bytes()), ("b.md", big.read_bytes()), ("c.md", b"")]
    assert got[1][2] == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_folder_is_named_with_why(tmp_path: Path) -> None:
    (tmp_path / "d.md").mkdir()
    with pytest.raises(InputError) as caught:
        read_all([(tmp_path / "d.md", "d.md")], include_green=False)
    assert str(caught.value) == "d.md: cannot read: Is a directory"


def test_a_missing_file_is_named_with_why(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_all([(tmp_path / "gone.md", "gone.md")], include_green=False)
    assert str(caught.value) == "gone.md: cannot read: No such file or directory"
