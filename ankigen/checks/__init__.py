"""Runnable PyTorch checks: a warm sandboxed runner, a bank of checks, claims in notes.

Names are imported on first use: the check server (`python -m ankigen.checks.server`, inside
the sandbox) runs this file first and must not pull in the card and text modules (nor what
they import) that only a build needs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bank import BankCheck, all_checks, match_gap
    from .cards import build_hook, run_checks
    from .claims import DocumentReport, extract_claims, verify_document
    from .keeper import KeptRunner, open_runner
    from .runner import Runner, RunResult

_WHERE = {"BankCheck": "bank", "all_checks": "bank", "match_gap": "bank",
          "build_hook": "cards", "run_checks": "cards", "DocumentReport": "claims",
          "extract_claims": "claims", "verify_document": "claims", "KeptRunner": "keeper",
          "open_runner": "keeper", "Runner": "runner", "RunResult": "runner"}

__all__ = ["BankCheck", "DocumentReport", "KeptRunner", "RunResult", "Runner", "all_checks",
           "build_hook", "extract_claims", "match_gap", "open_runner", "run_checks",
           "verify_document"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
