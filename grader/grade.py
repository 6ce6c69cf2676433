"""The grading pipeline: recall + sources → claims → passages → verdicts → marks → graded.md.

`grade()` is the library's front door; the CLI and the eval harness are thin layers over it.
With an endpoint, a model decomposes the recall into claims and judges them against their
retrieved passages (two calls, at most one re-ask); without one, the recall's sentences
are checked for coverage only, and marks come from omissions and failing code alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ankigen.model import Mark

from . import marks as mk
from .backing import Backing, offline_backing
from .code import SharedRunner, run_code
from .context import DEFAULT_CONTEXT_TOKENS
from .coverage import COVERED, PartEvidence, gather, offline_omissions
from .model import (
    Assessment,
    Claim,
    CodeRun,
    Judgement,
    NameCheck,
    Omission,
    PartGrade,
    Report,
    Verdict,
)
from .names import check_names
from .recall import (
    Recall,
    is_instruction,
    load_recall,
    part_text,
    sentence_claims,
    supplied_names,
)
from .retrieve import Index, coverage, overlap
from .sources import SourceSet, load_sources
from .write import content_end, graded_markdown

OFFLINE_NOTE = ("offline: no model endpoint is set (--base-url or OPENAI_BASE_URL), so "
                "statements are checked against the sources' wording only: a part gets 🟢 "
                "only when one passage states each of its statements in much the same words")
OFFLINE_NO_GREEN_NOTE = ("offline: no model endpoint is set (--base-url or OPENAI_BASE_URL), "
                         "so statements are checked for coverage only and no part gets 🟢")
OFFLINE_NOTES = (OFFLINE_NOTE, OFFLINE_NO_GREEN_NOTE)


@dataclass(frozen=True)
class GradeOptions:
    endpoint: Any = None  # grader.llm.Endpoint; None grades offline
    run_code: bool = True
    device: str = "auto"
    code_timeout_s: float = 10.0
    unsandboxed: bool = False  # --unsafe-no-sandbox: run recalled code without the sandbox
    use_cache: bool = True
    cache_path: Path | None = None  # the LLM response cache; default under ANKIGEN_CACHE_DIR
    # the judge's whole request (sources shown whole when it fits), estimated in tokens
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    # Offline 🟢 where one passage sentence states each statement in much the same words
    # (backing.py). Off by default: its false-accept was 0 % on every labelled split, but
    # wording cannot tell a swap from the truth ("Ridge adds an L1 penalty" beside "Lasso adds
    # an L1 penalty"; batch norm's train and test statistics swapped, both found in review),
    # and offline must never claim a 🟢 it cannot back (docs/grader.md).
    offline_green: bool = False


def offline_note(options: GradeOptions) -> str:
    """What an offline grade can and cannot say, as its first warning."""
    return OFFLINE_NOTE if options.offline_green else OFFLINE_NO_GREEN_NOTE


def grade(recall_path: Path, source_paths: Sequence[Path],
          options: GradeOptions | None = None) -> Report:
    """Grade one recall file against its sources. Raises GraderError on bad input."""
    sources = load_sources(source_paths)
    recall = load_recall(recall_path)
    return grade_recall(recall, sources, options or GradeOptions())


def grade_recall(recall: Recall, sources: SourceSet, options: GradeOptions,
                 runner_factory: Callable[[], Any] | None = None) -> Report:
    index = Index(sources.passages)
    if not options.run_code:
        code_runs = run_code(recall.doc, None)
        bad_names = check_names(recall, None)
    elif runner_factory is not None:
        code_runs = run_code(recall.doc, runner_factory)
        bad_names = check_names(recall, runner_factory, code_runs)
    else:
        with SharedRunner(options.device, options.code_timeout_s,
                          options.unsandboxed) as runner:
            code_runs = run_code(recall.doc, runner)
            bad_names = check_names(recall, runner, code_runs)
            runner_factory = runner
    # the isolation the recalled code ran under, or why it did not run
    isolation = str(getattr(runner_factory, "isolation", "") or "")
    warnings = [f"{recall.path}: graded without the {recall.stripped} tutor line(s) it held"
                ] if recall.stripped else []
    if recall.set_aside:
        warnings.append(f"{recall.path}: set aside {recall.set_aside} line(s) the tutor supplied "
                        "(`=>` answers, `>` quotes, a name given after “I forgot the name”): "
                        "not the learner's recall, so never claims and never credited")
    if options.endpoint is None:
        claims = sentence_claims(recall)
        evidence = _evidence(recall, claims, sources, index)
        judgements = offline_judgements(evidence)
        omissions = [Omission(e.part, k.term, sources.passages[k.passage])
                     for e in evidence for k in offline_omissions(e)]
        backing = offline_backing(evidence, sources) if options.offline_green else {}
        parts = assemble(recall, sources, judgements, omissions, code_runs, green=False,
                         names=bad_names, backing=backing)
        note = offline_note(options)
        return Report(recall.path, sources.files, "offline", None, tuple(parts),
                      graded_markdown(recall.text, parts), warnings=(note, *warnings),
                      code_isolation=isolation, set_aside=recall.set_aside)
    from ankigen.llm import LLM, ResponseCache, default_cache_path

    from . import judge

    cache = ResponseCache(options.cache_path or default_cache_path()) if options.use_cache else None
    try:
        with LLM(options.endpoint, cache) as llm:
            claims = judge.decompose(llm, recall, code_runs)
            evidence = _evidence(recall, claims, sources, index)
            # the candidate key points come from the learner's own sentences, as offline:
            # the model's claims are reworded and regrouped
            hints = {e.part: offline_omissions(e)
                     for e in _evidence(recall, sentence_claims(recall), sources, index)}
            judgements, omissions = judge.judge(llm, recall, evidence, sources, code_runs,
                                                options.context_tokens, hints)
            calls, hits = llm.calls, llm.cache_hits
    finally:
        if cache is not None:
            cache.close()
    parts = assemble(recall, sources, judgements, omissions, code_runs, green=True,
                     names=bad_names)
    return Report(recall.path, sources.files, "llm", options.endpoint.model, tuple(parts),
                  graded_markdown(recall.text, parts), llm_calls=calls, llm_cache_hits=hits,
                  warnings=tuple(warnings), code_isolation=isolation,
                  set_aside=recall.set_aside)


def _evidence(recall: Recall, claims: Sequence[Claim], sources: SourceSet,
              index: Index) -> list[PartEvidence]:
    parts = [p.index for p in recall.doc.parts]
    texts = {p.index: part_text(recall, p.span, recall.prompted) for p in recall.doc.parts}
    topics = {p.index: p.topic for p in recall.doc.parts}
    return gather(parts, claims, texts, recall.unprompted_text, sources, index, topics,
                  recall.prompted)


def offline_judgements(evidence: Sequence[PartEvidence]) -> list[Judgement]:
    """Coverage only: a claim whose words the best passages share is left unjudged (offline
    cannot tell right from wrong); the rest are unverified."""
    out = []
    for e in evidence:
        for claim in e.claims:
            found = e.top.get(claim.id, [])
            share = coverage(claim.text, [p.text for p, _ in found])
            best = max(found, key=lambda ps: overlap(claim.text, ps[0].text), default=None)
            passage, score = best if best else (None, 0.0)
            if passage is not None and share >= COVERED:
                out.append(Judgement(claim, Verdict.UNJUDGED, passage, score,
                                     f"its words are in {passage.cite()} and nearby passages "
                                     f"({share:.0%}); offline, so not judged"))
            else:
                out.append(Judgement(claim, Verdict.NOT_IN_SOURCE, passage, score,
                                     f"the best passages share {share:.0%} of its words"))
    return out


def assemble(recall: Recall, sources: SourceSet, judgements: Sequence[Judgement],
             omissions: Sequence[Omission], code_runs: Sequence[CodeRun], *,
             green: bool, names: Sequence[NameCheck] = (),
             backing: dict[int, Backing] | None = None) -> list[PartGrade]:
    """The parts' marks and notes. 🟢 needs nothing wrong found and evidence: with a model
    (`green`), its verdicts (`_backed`); offline, a `backing` for the part."""
    lines = recall.lines
    out = []
    failed = [r.part for r in code_runs if r.status == "error"] + [n.part for n in names]
    marked, listed = mk.sort_omissions(omissions, judgements, supplied_names(recall), failed)
    for part in recall.doc.parts:
        mine = [j for j in judgements if j.claim.part == part.index]
        missed = [o for o in marked if o.part == part.index]
        runs = [r for r in code_runs if r.part == part.index]
        assessments = mk.contradiction_assessments(recall.text, part.index, mine)
        assessments += mk.code_assessments(lines, part.index, runs, sources)
        wrong_names = [n for n in names if n.part == part.index]
        assessments += mk.name_assessments(recall.text, part.index, wrong_names, sources)
        left_out = mk.omission_assessment(lines, part.index, part.span.start, part.span.end,
                                          missed)
        assessments += [left_out] if left_out else []
        assessments.sort(key=lambda a: a.after_line)
        mark = mk.worst([a.mark for a in assessments])
        orders = [ln.strip() for ln in lines[part.span.start - 1 : part.span.end]
                  if is_instruction(ln)]
        offline = (backing or {}).get(part.index)
        if mark is None and not orders and _ran_cleanly(runs) and (
                green and _backed(mine) or offline is not None):
            end = content_end(lines, part.span.start, part.span.end)
            assessments.append(Assessment(part.index, end, Mark.GREEN,
                                          _green_feedback(mine, offline)))
            mark = Mark.GREEN
        # Every statement the sources do not settle is listed, the model's doubts first:
        # an "and N more" would hide the very ones a learner should look up.
        absent = [j for j in mine if j.verdict is Verdict.NOT_IN_SOURCE]
        unverified = [f"doubtful (not in your sources): “{j.claim.text}” {j.doubt}"
                      for j in absent if j.doubt]
        unverified += [f"“{j.claim.text}” is not in the sources." for j in absent if not j.doubt]
        unverified += [f"{mk.ALSO} {o.point}" + (f": {o.why}" if o.why else "") +
                       f" ({mk.where(o.passage)})" for o in listed if o.part == part.index]
        unverified += [note for r in runs if (note := _code_note(lines, r))]
        unverified += [f"this part speaks to the grader (“{o[:80]}”); that was ignored, and "
                       "the part cannot be marked 🟢." for o in orders]
        out.append(PartGrade(part.index, part.span, part.topic, mark, tuple(mine),
                             tuple(missed), tuple(runs), tuple(assessments), tuple(unverified),
                             tuple(wrong_names)))
    return out


def _ran_cleanly(runs: Sequence[CodeRun]) -> bool:
    """Every piece of recalled Python ran without error (pseudo-code, which cannot run, does
    not count against a part)."""
    return all(r.status in ("ok", "not_python") for r in runs)


def _green_feedback(judgements: Sequence[Judgement], offline: Backing | None) -> str:
    if offline is None:
        supported = sum(j.verdict is Verdict.SUPPORTED for j in judgements)
        return f"supported by the sources: {supported} of {len(judgements)} statements checked."
    lines: dict[str, set[int]] = {}
    for _, p in offline.backed:
        lines.setdefault(Path(p.file).name, set()).add(p.span.start)
    cited = "; ".join(f"{name} line{'s' if len(found) > 1 else ''} "
                      f"{', '.join(map(str, sorted(found)))}" for name, found in lines.items())
    silent = (f"; {len(offline.silent)} the sources do not cover (listed below)"
              if offline.silent else "")
    return (f"backed by the sources, checked offline: {len(offline.backed)} of "
            f"{len(judgements)} statements each say what one passage says in much the same "
            f"words, with its terms, numbers and negation ({cited}){silent}.")


def _backed(judgements: Sequence[Judgement]) -> bool:
    """🟢 needs evidence (and, the caller checks, code that ran cleanly): most statements
    supported by a cited passage, and no statement the model doubts."""
    if any(j.doubt for j in judgements):
        return False  # the model doubts a statement the sources leave open: not a clean part
    supported = sum(j.verdict is Verdict.SUPPORTED for j in judgements)
    return supported >= 1 and supported >= mk.GREEN_SHARE * len(judgements)


def _code_note(lines: Sequence[str], run: CodeRun) -> str | None:
    """What to say of code that neither ran cleanly nor failed on its own merits."""
    if run.status in ("ok", "error", "not_python"):
        return None
    first = next((ln.strip() for ln in lines[run.span.start - 1 : run.span.end] if ln.strip()), "")
    what = {"not_runnable": "could not be run as written",
            "not_runnable_here": "cannot run on this machine", "skipped": "was not run",
            "timeout": "did not finish in time", "crashed": "crashed the sandbox"}
    detail = run.detail.removeprefix("not run: ")
    return f"the code starting “{first[:60]}” {what.get(run.status, run.status)}: {detail}"
