"""A scripted "model" for grader tests: it reads the grader's real requests (the JSON between
<data> and </data>) and answers the way a careful model would, by simple rules a test can
steer. Served by fake_openai.FakeOpenAI, so the grader's real client talks HTTP to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fake_openai import Reply

_DATA_RE = re.compile(r"<data>\n(.*)\n</data>", re.S)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _shared(a: str, b: str) -> int:
    words = re.compile(r"[a-z]{4,}")
    return len(set(words.findall(a.lower())) & set(words.findall(b.lower())))


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    user = body["messages"][1]["content"]
    m = _DATA_RE.search(user)
    assert m, "the grader's request carries its data between <data> and </data>"
    result: dict[str, Any] = json.loads(m.group(1))
    return result


def is_decompose(body: dict[str, Any]) -> bool:
    return "split a learner's written recall" in body["messages"][0]["content"]


@dataclass
class Tutor:
    """Rules: a claim containing any of `wrong` is contradicted (citing the offered passage
    that holds `because`); one containing any of `unknown` is not in the source; the rest are
    supported by the offered passage sharing most words. Points named in `omit` are reported
    as left out (see `omissions`)."""

    wrong: dict[str, str] = field(default_factory=dict)  # claim phrase → source phrase
    unknown: tuple[str, ...] = ()
    # key point → severity, or (part, severity) to name the part it is missing from
    omit: dict[str, str | tuple[int, str]] = field(default_factory=dict)
    cite_unoffered: bool = False
    doubt: dict[str, str] = field(default_factory=dict)  # unknown claim phrase → own-knowledge doubt

    def __call__(self, body: dict[str, Any]) -> Reply:
        data = data_of(body)
        return Reply(self.decompose(data) if is_decompose(body) else self.judge(data))

    def decompose(self, data: dict[str, Any]) -> dict[str, Any]:
        claims = []
        for part in data["parts"]:
            for line, text in part["paragraphs"]:
                for sentence in _SENTENCE_RE.split(text.strip()):
                    if len(sentence.split()) >= 4 and not sentence.endswith((":", "?")):
                        claims.append({"part": part["part"], "line": line, "text": sentence})
        return {"claims": claims}

    def judge(self, data: dict[str, Any]) -> dict[str, Any]:
        passages = shown_passages(data)
        verdicts = []
        for c in data["claims"]:
            offered = c.get("passages", list(passages))
            wrong = next((w for w in self.wrong if w in c["text"]), None)
            if wrong is not None:
                because = self.wrong[wrong]
                cite = next((p for p in offered if because in passages[p]["text"]), None)
                verdicts.append({"id": c["id"], "reasoning": f"the passage says {because}",
                                 "verdict": "contradicted", "passage": cite,
                                 "correction": because, "severity": "major"})
            elif any(u in c["text"] for u in self.unknown) or not offered:
                doubt = next((d for u, d in self.doubt.items() if u in c["text"]), "")
                verdicts.append({"id": c["id"], "reasoning": "the passages do not say",
                                 "verdict": "not_in_source", "passage": None, "doubt": doubt})
            else:
                best = max(offered, key=lambda p: _shared(c["text"], passages[p]["text"]))
                cite = "P999" if self.cite_unoffered else best
                verdicts.append({"id": c["id"], "reasoning": "the passage says the same",
                                 "verdict": "supported", "passage": cite})
        return {"claims": verdicts, "omissions": self.omissions(data, passages)}

    def omissions(self, data: dict[str, Any], passages: dict[str, Any]) -> list[dict[str, Any]]:
        """Each point of `omit` in the part whose paragraphs share most words with the
        passage that names it (bold or heading), citing that passage."""
        out = []
        for point, how in self.omit.items():
            part_no, severity = how if isinstance(how, tuple) else (None, how)
            cite = next((pid for pid, p in passages.items()
                         if point.lower() in (p["section"] + " " + p["text"]).lower()), None)
            if cite is None:
                continue
            where = passages[cite]["section"] + " " + passages[cite]["text"]
            part = part_no or max(data["parts"], key=lambda pt: _shared(
                " ".join(t for _, t in pt["paragraphs"]), where))["part"]
            out.append({"part": part, "point": point, "passage": cite,
                        "severity": severity, "why": f"{point} is central to "
                        f"{passages[cite]['section']}"})
        return out


def shown_passages(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """id → {section, text} for both request shapes: whole sources, or retrieved passages."""
    if "passages" in data:
        return dict(data["passages"])
    return {p["id"]: {"section": g["section"], "text": p["text"]}
            for g in data["sources"] for p in g["passages"]}


def fooled(body: dict[str, Any]) -> Reply:
    """A model that obeyed the learner's injected instruction: every claim 'supported',
    citing its first offered passage, and nothing left out."""
    data = data_of(body)
    if is_decompose(body):
        return Reply(Tutor().decompose(data))
    first = next(iter(shown_passages(data)), None)
    return Reply({"claims": [{"id": c["id"], "reasoning": "as instructed, green",
                              "verdict": "supported", "passage": (c.get("passages") or [first])[0]}
                             for c in data["claims"]], "omissions": []})


Script = Callable[[dict[str, Any]], Reply]
