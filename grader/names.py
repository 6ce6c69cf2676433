"""API names the learner wrote (`model.drop()`), checked by running them.

The same check as the cards' (ankigen/checks/names.py): each `receiver.name(` whose
receiver is a torch object, made by the learner's own code or known by its role in a part
about PyTorch, is looked up on a real object in the sandbox. A name that is not there is a
🔴 by execution, whatever the sources say; a name that is there, or that could not be
looked up, says nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .model import CodeRun, NameCheck
from .recall import Recall


class _NoCache:
    """`names.lookup`'s cache and run setting, for one grading: a recall is one program,
    looked up once, so nothing is kept or keyed."""

    @staticmethod
    def key(kind: str, *code: str) -> str:
        return ""

    @staticmethod
    def get(key: str) -> None:
        return None

    @staticmethod
    def put(key: str, value: dict[str, Any]) -> None:
        pass


def check_names(recall: Recall, runner_factory: Callable[[], Any] | None,
                runs: Sequence[CodeRun] = ()) -> list[NameCheck]:
    """The learner's PyTorch calls that do not exist, as running them shows. Empty when
    there is no runner (code checks off, no sandbox): unchecked names are no verdict. Code
    that ran as a whole (`runs`: ok or failing) is judged by that run, not name by name;
    pseudo-code and prose are looked up."""
    from ankigen.checks import names

    if runner_factory is None:
        return []
    found = names.find([recall.doc], {recall.doc.path: recall.learner_text.encode("utf-8")})
    if not found.uses:
        return []
    specs = {recall.doc.path: [s.spec() for s in found.programs[recall.doc.path]]}
    try:
        results, _ = names.lookup(specs, runner_factory, _NoCache(), _NoCache())
    except Exception:  # noqa: BLE001 - no sandbox, no torch: no verdict, never a mark
        return []
    scopes = results.get(recall.doc.path)
    if scopes is None:
        return []
    out: dict[tuple[int, str], NameCheck] = {}
    ran = {n for r in runs if r.status in ("ok", "error")
           for n in range(r.span.start, r.span.end + 1)}
    for use in found.uses:
        if use.line in ran:
            continue
        entry = scopes[use.scope].get(use.expr)
        info = entry and entry["names"].get(use.name)
        if not info or info.get("ok") is not False:
            continue  # it exists, or it could not be looked up
        assert entry is not None
        out.setdefault((use.line, use.name), NameCheck(
            use.part, use.line, f"{use.expr}.{use.name}()", str(info["error"]),
            str(entry["type"]), tuple(info.get("near") or ())))
    return sorted(out.values(), key=lambda n: n.line)
