"""Request and response models (pydantic), apart from the tables, so OpenAPI describes
exactly what the API takes and returns. Reports are mapped field by field from what the
grader stored, never passed through as a bare dict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

State = Literal["queued", "running", "graded", "failed"]
MarkName = Literal["green", "yellow", "red"]


def when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ErrorBody(BaseModel):
    """Every API error: `detail` is the one-line message, `code` a stable word."""

    detail: str
    code: str


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    version: str


class UserPublic(BaseModel):
    id: int
    name: str
    is_tutor: bool


class JobPublic(BaseModel):
    state: State
    attempts: int
    error: str = Field(description="why it failed ('' unless failed); the learner may retry")


class SourcePublic(BaseModel):
    id: int
    name: str
    size: int
    owner: str
    mine: bool
    shared_with: list[int]
    created_at: datetime


class SessionCreate(BaseModel):
    title: str = Field("", max_length=200)
    # pattern: not blank, so the schema says what the server accepts (schemathesis, issue 17)
    text: str = Field(pattern=r"\S", description="the recall session, markdown (at most 1 MB)")
    source_ids: list[int] = Field(min_length=1, max_length=100)


class SessionPublic(BaseModel):
    id: int
    title: str
    user: str
    created_at: datetime
    source_ids: list[int]
    job: JobPublic
    marks: list[MarkName | None] = Field(description="each part's mark, once graded")


class PassagePublic(BaseModel):
    file: str
    line: int
    section: str
    text: str


class JudgementPublic(BaseModel):
    claim: str
    line: int
    verdict: Literal["supported", "contradicted", "not_in_source", "unjudged"]
    passage: PassagePublic | None
    reasoning: str
    correction: str


class OmissionPublic(BaseModel):
    point: str
    severity: str
    why: str
    passage: PassagePublic


class CodeRunPublic(BaseModel):
    start: int
    end: int
    status: str
    detail: str
    device: str


class AssessmentPublic(BaseModel):
    after_line: int
    mark: MarkName
    feedback: str


class PartPublic(BaseModel):
    index: int
    topic: str
    start: int
    end: int
    mark: MarkName | None
    assessments: list[AssessmentPublic]
    judgements: list[JudgementPublic]
    omissions: list[OmissionPublic]
    code: list[CodeRunPublic]
    unverified: list[str]


class ReportPublic(BaseModel):
    mode: Literal["llm", "offline"]
    model: str | None
    sources: list[str]
    warnings: list[str]
    code_isolation: str
    parts: list[PartPublic]


class SessionDetail(SessionPublic):
    recall: str
    report: ReportPublic | None


class ClassCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)


class MemberAdd(BaseModel):
    name: str


class ShareRequest(BaseModel):
    class_id: int


class ClassPublic(BaseModel):
    id: int
    name: str
    tutor: str
    mine: bool


class MissedPoint(BaseModel):
    point: str
    learners: int
    times: int


class ClassDetail(ClassPublic):
    members: list[UserPublic]
    sessions: list[SessionPublic]
    most_missed: list[MissedPoint]


def _passage(p: dict[str, Any]) -> PassagePublic:
    return PassagePublic(file=p["file"], line=p["span"]["start"], section=p["section"],
                         text=p["text"])


def report_public(data: dict[str, Any]) -> ReportPublic:
    """The stored report (grader.model.Report.to_dict()) → the API's shape."""
    parts = []
    for p in data["parts"]:
        parts.append(PartPublic(
            index=p["index"], topic=p["topic"], start=p["span"]["start"], end=p["span"]["end"],
            mark=p["mark"],
            assessments=[AssessmentPublic(after_line=a["after_line"], mark=a["mark"],
                                          feedback=a["feedback"]) for a in p["assessments"]],
            judgements=[JudgementPublic(
                claim=j["claim"]["text"], line=j["claim"]["line"], verdict=j["verdict"],
                passage=_passage(j["passage"]) if j["passage"] else None,
                reasoning=j["reasoning"], correction=j["correction"]) for j in p["judgements"]],
            omissions=[OmissionPublic(point=o["point"], severity=o["severity"], why=o["why"],
                                      passage=_passage(o["passage"])) for o in p["omissions"]],
            code=[CodeRunPublic(start=c["span"]["start"], end=c["span"]["end"],
                                status=c["status"], detail=c["detail"], device=c["device"])
                  for c in p["code"]],
            unverified=list(p["unverified"])))
    return ReportPublic(mode=data["mode"], model=data["model"], sources=list(data["sources"]),
                        warnings=list(data["warnings"]), code_isolation=data["code_isolation"],
                        parts=parts)
