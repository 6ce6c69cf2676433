from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ helpers (anki_helpers, servers)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own cache so nothing leaks between tests or from the user's."""
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True, scope="session")
def _no_kept_runner(tmp_path_factory):
    """Checks start their own servers: no warm keeper may outlive a test, and none of the
    user's is used (nor the user's cache). Session-wide, so module fixtures that run checks see it too; the
    keeper's own tests turn it on, each in a folder of its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANKIGEN_CACHE_DIR", str(tmp_path_factory.mktemp("session-cache")))
        mp.setenv("ANKIGEN_KEEP_WARM", "0")
        mp.setenv("ANKIGEN_RUNTIME_DIR", str(tmp_path_factory.getbasetemp() / "run"))
        yield
