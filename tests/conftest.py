from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ helpers (anki_helpers, servers)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own cache so nothing leaks between tests or from the user's."""
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    # Checks start their own servers (no warm keeper outliving a test); the keeper's own
    # tests turn it on, in a folder of their own.
    monkeypatch.setenv("ANKIGEN_KEEP_WARM", "0")
    monkeypatch.setenv("ANKIGEN_RUNTIME_DIR", str(tmp_path_factory.getbasetemp() / "run"))
