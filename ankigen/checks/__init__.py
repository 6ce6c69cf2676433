"""Runnable PyTorch checks: a warm sandboxed runner, a bank of checks, claims in notes."""

from __future__ import annotations

from .bank import BankCheck, all_checks, match_gap
from .cards import build_hook, run_checks
from .claims import DocumentReport, extract_claims, verify_document
from .keeper import KeptRunner, open_runner
from .runner import Runner, RunResult

__all__ = ["BankCheck", "DocumentReport", "KeptRunner", "RunResult", "Runner", "all_checks",
           "build_hook", "extract_claims", "match_gap", "open_runner", "run_checks",
           "verify_document"]
