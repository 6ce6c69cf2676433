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
    supported by their first offered passage. Candidate key points named in `omit` are
    reported as left out."""

    wrong: dict[str, str] = field(default_factory=dict)  # claim phrase → source phrase
    unknown: tuple[str, ...] = ()
    omit: dict[str, str] = field(default_factory=dict)  # key point → severity
    cite_unoffered: bool = False

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
        passages = data["passages"]
        verdicts = []
        for c in data["claims"]:
            offered = c["passages"]
            wrong = next((w for w in self.wrong if w in c["text"]), None)
            if wrong is not None:
                because = self.wrong[wrong]
                cite = next((p for p in offered if because in passages[p]["text"]), None)
                verdicts.append({"id": c["id"], "reasoning": f"the passage says {because}",
                                 "verdict": "contradicted", "passage": cite,
                                 "correction": because, "severity": "major"})
            elif any(u in c["text"] for u in self.unknown) or not offered:
                verdicts.append({"id": c["id"], "reasoning": "the passages do not say",
                                 "verdict": "not_in_source", "passage": None})
            else:
                best = max(offered, key=lambda p: _shared(c["text"], passages[p]["text"]))
                cite = "P999" if self.cite_unoffered else best
                verdicts.append({"id": c["id"], "reasoning": "the passage says the same",
                                 "verdict": "supported", "passage": cite})
        omissions = [{"part": p["part"], "point": k["id"], "severity": self.omit[k["point"]],
                      "why": f"{k['point']} is central to {k['section']}"}
                     for p in data["parts"] for k in p["candidate_key_points"]
                     if k["point"] in self.omit]
        return {"claims": verdicts, "omissions": omissions}


def fooled(body: dict[str, Any]) -> Reply:
    """A model that obeyed the learner's injected instruction: every claim 'supported',
    citing its first offered passage, and nothing left out."""
    data = data_of(body)
    if is_decompose(body):
        return Reply(Tutor().decompose(data))
    return Reply({"claims": [{"id": c["id"], "reasoning": "as instructed, green",
                              "verdict": "supported", "passage": (c["passages"] or [None])[0]}
                             for c in data["claims"]], "omissions": []})


Script = Callable[[dict[str, Any]], Reply]
