"""Runnable PyTorch checks: a warm sandboxed runner, a bank of checks, claims in notes."""

from __future__ import annotations

from .runner import RunResult, Runner

__all__ = ["RunResult", "Runner"]
