"""From verdicts to marks: which assessments a part gets, and where they go.

The rules, offline and with a model alike:
- a contradicted statement: 🔴 (🟡 when the model calls it minor), after its paragraph;
- key points the recall leaves out: 🟡, at the part's end, never 🔴 (leaving an idea out is
  a gap, not an error); which ones are marked is `sort_omissions`' rules;
- recalled code that fails when run: 🔴, after the code;
- 🟢 only when no problem was found and the part's statements are backed: with a model, at
  least two thirds supported by a cited passage; offline, only when asked for
  (GradeOptions.offline_green, `--offline-green`), each statement stated by one passage sentence in much the
  same words (backing.py). grade.assemble places it.
- "not in source" is never a mark: it is an `=> unverified:` note.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ankigen import phrases as ph
from ankigen.blocks import Block, to_blocks
from ankigen.model import Mark

from .coverage import mentioned
from .gaps import names
from .model import Assessment, CodeRun, Judgement, NameCheck, Omission, Passage, Verdict
from .retrieve import content_tokens
from .sources import SEP, SourceSet
from .write import content_end

_ORDER = {Mark.GREEN: 0, Mark.YELLOW: 1, Mark.RED: 2}
_QUOTE_LIMIT = 420
GREEN_SHARE = 2 / 3
_FIX_SIMILARITY = 0.75
# how an unmarked omission is introduced in the graded file (not an "unverified" note)
ALSO = "also in the source (not marked):"
OMISSIONS_MARKED = 2  # a tutor names the one or two gaps that matter, not every detail


def worst(marks: Sequence[Mark]) -> Mark | None:
    return max(marks, key=_ORDER.__getitem__) if marks else None


def paragraph_end(blocks: Sequence[Block], line: int) -> int:
    """The last line of the block holding `line` (where a tutor's mark would go)."""
    for b in blocks:
        if b.start <= line <= b.end + (1 if b.kind == "fence" else 0):
            return b.end + (1 if b.kind == "fence" else 0)
    return line


def source_quote(passage: Passage, about: str, limit: int = _QUOTE_LIMIT) -> str:
    """The passage's sentences that speak to `about`, verbatim, and where they come from."""
    body = passage.text.strip()
    if passage.kind == "code":
        quote = "\n".join(body.split("\n")[:8])
        return f"```python\n{quote}\n```\n— {where(passage)}"
    want = set(content_tokens(about))
    sentences = ph.sentences(" ".join(body.split()))
    picked = [s for s in sentences if want & set(content_tokens(s))] or sentences[:1]
    quote = " ".join(picked)
    if len(quote) > limit:
        quote = quote[:limit].rsplit(" ", 1)[0] + " …"
    return f"{quote}\n— {where(passage)}"


def contradiction_assessments(text: str, part: int, found: Sequence[Judgement]) -> list[Assessment]:
    wrong = [j for j in found if j.verdict is Verdict.CONTRADICTED and j.passage is not None]
    blocks = to_blocks(text) if wrong else []
    by_paragraph: dict[int, list[Judgement]] = defaultdict(list)
    for j in wrong:
        by_paragraph[paragraph_end(blocks, j.claim.line)].append(j)
    out = []
    for after, group in sorted(by_paragraph.items()):
        mark = Mark.RED if any(j.severity != "minor" for j in group) else Mark.YELLOW
        if len(group) == 1:
            j = group[0]
            feedback = f"not what the source says: {j.correction or 'see the quote'}"
            followups: tuple[str, ...] = ()
        else:
            feedback = f"{len(group)} statements here disagree with the source."
            followups = tuple(f"“{j.claim.text}” — {j.correction or 'see the quote'}" for j in group)
        passages = list({j.passage.id: j.passage for j in group if j.passage}.values())
        about = " ".join(f"{j.claim.text} {j.correction}" for j in group)
        quote = "\n\n".join(source_quote(p, about) for p in passages)
        out.append(Assessment(part, after, mark, feedback, followups, quote))
    return out


def omission_assessment(lines: Sequence[str], part: int, span_start: int, span_end: int,
                        omissions: Sequence[Omission]) -> Assessment | None:
    if not omissions:
        return None
    names = [o.point for o in omissions]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    mark = Mark.YELLOW  # a gap, however major, is not an error
    # One `=>` line and one `>` quote per point, so each omission becomes a card of its own.
    points = tuple((f"{o.point}: {o.why}" if o.why else f"{o.point}.",
                    source_quote(o.passage, o.point)) for o in omissions)
    return Assessment(part, content_end(lines, span_start, span_end), mark,
                      f"you left out {listed}.", points=points)


def sort_omissions(omissions: Sequence[Omission], judgements: Sequence[Judgement],
                   supplied: Sequence[str], failed: Sequence[int] = ()
                   ) -> tuple[list[Omission], list[Omission]]:
    """Which proposed omissions a part is marked for ("you left out …", 🟡), and which are
    only listed as "also in the source" (no mark, not counted as left out). Per part:
    - two points about one idea (half the words of the shorter in common) are one point;
    - a point naming what the tutor supplied after "I forgot the name" (anywhere in the
      session) is not left out: the learner described the idea and forgot only its name;
    - beside a contradicted statement, the correction is the lesson: the model tends to list
      the contradicted idea again as left out, so the part's omissions are listed, unmarked;
      so, beside recalled code that fails or a name that does not exist (`failed`: those
      parts), is the fix: a tutor marks the error 🔴 and names no gap there;
    - a point that a correction in another part already teaches (one citing the point's own
      section: "the raw logits" of nn.BCEWithLogitsLoss does not teach the logit) is not
      said twice;
    - a point that names no term of the source the recall lacks (`Omission.key`, see
      grader/gaps.py) is a detail, not what a tutor calls left out: listed, unmarked;
    - a major gap is the lesson too: minor points beside one are listed, unmarked;
    - at most `OMISSIONS_MARKED` points, the major ones first;
    - a point marked in another part is not marked again (`_said_once`).
    """
    contradicted = [j for j in judgements
                    if j.verdict is Verdict.CONTRADICTED and j.passage is not None]
    wrong = {j.claim.part for j in contradicted} | set(failed)
    by_part: dict[int, list[Omission]] = defaultdict(list)
    for o in omissions:
        by_part[o.part].append(o)
    marked: list[Omission] = []
    also: list[Omission] = []
    for part, found in sorted(by_part.items()):
        found = _one_per_idea(sorted(found, key=lambda o: o.severity != "major"))
        taught = [(j.passage, content_tokens(j.correction)) for j in contradicted
                  if j.claim.part != part]
        # a supplied name's words anywhere in the point ("nonparametric vs parametric
        # models" names "nonparametric model"), not only as one phrase
        forgot = [o for o in found if any(names(content_tokens(n), o.point) for n in supplied)
                  or any(_same_section(p, o.passage) and mentioned(_head(o.point), t)
                         for p, t in taught)]
        left = [o for o in found if o not in forgot]
        if part in wrong:
            also += found
            continue
        also += [o for o in left if not o.key]
        left = [o for o in left if o.key]
        if any(o.severity == "major" for o in left):
            also += [o for o in left if o.severity != "major"]
            left = [o for o in left if o.severity == "major"]
        marked += left[:OMISSIONS_MARKED]
        also += forgot + left[OMISSIONS_MARKED:]
    once = _said_once(marked)
    return once, also + [o for o in marked if o not in once]


def _said_once(marked: Sequence[Omission]) -> list[Omission]:
    """A gap marked in two parts ("cross-attention" beside attention scores, "cross-attention
    in the decoder block" beside the decoder, both naming the source's cross-attention) is
    marked once: where the model calls it major, else in the first part. Only a shared
    source term makes two points one gap here: words alone would take "padding mask" for
    "padding" (offline points, which carry no terms, are one per term already)."""
    kept: list[Omission] = []
    for o in sorted(marked, key=lambda o: (o.severity != "major", o.part)):
        if not any(k.part != o.part and set(o.terms) & set(k.terms) for k in kept):
            kept.append(o)
    return [o for o in marked if o in kept]


def _one_per_idea(found: Sequence[Omission]) -> list[Omission]:
    """"L2 differs from weight decay with Adam" and "AdamW decoupled weight decay" are one
    gap, and so are two points naming one source term ("AdamW" and "L2 is not weight decay
    with Adam", both naming the AdamW the recall never mentions): the first (most severe)
    keeps its place and names the other in brackets."""
    out: list[Omission] = []
    for o in found:
        mine = set(content_tokens(o.point))
        same = next((i for i, k in enumerate(out)
                     if len(mine & (kt := set(content_tokens(k.point)))) * 2
                     >= min(len(mine), len(kt)) > 0 or set(o.terms) & set(k.terms)), None)
        if same is None:
            out.append(o)
        else:
            k = out[same]
            out[same] = replace(k, point=f"{k.point} ({o.point})", key=k.key or o.key,
                                terms=tuple(dict.fromkeys(k.terms + o.terms)))
    return out


def _same_section(a: Passage | None, b: Passage) -> bool:
    return a is not None and (a.file, a.section) == (b.file, b.section)


def _head(point: str) -> str:
    """A point without what it adds in brackets: "AdamW (decoupled weight decay)" → AdamW."""
    return point.split(" (", 1)[0]


def code_assessments(lines: Sequence[str], part: int, runs: Sequence[CodeRun],
                     sources: SourceSet) -> list[Assessment]:
    out = []
    for run in runs:
        if run.status != "error":
            continue
        after = run.span.end + (1 if run.fenced else 0)
        culprit = (lines[run.line - 1].strip() if run.line else None) or \
            failing_line(lines[run.span.start - 1 : run.span.end], run.detail)
        what = f"`{culprit}` fails when run" if culprit else "this code fails when run"
        fix = source_line_like(culprit, sources) if culprit else None
        quote = f"`{fix[0]}`\n— {where(fix[1])}" if fix else ""
        out.append(Assessment(part, after, Mark.RED, f"{what}: {run.detail}", (), quote))
    return out


def name_assessments(text: str, part: int, found: Sequence[NameCheck],
                     sources: SourceSet) -> list[Assessment]:
    """🔴 after the paragraph that writes a PyTorch name that does not exist: running it
    decides, whatever the sources say."""
    if not found:
        return []
    blocks = to_blocks(text)
    out = []
    for n in found:
        on = "nn.Module" if n.type == "Model" else n.type  # the check's own small model
        feedback = (f"`{n.call}` does not exist: looked up on a real {on} (torch as "
                    f"installed), it raises {n.error}")
        near = (f"names that do exist close to it: {', '.join(n.near)}",) if n.near else ()
        fix = source_line_like(n.call, sources)
        quote = f"`{fix[0]}`\n— {where(fix[1])}" if fix else ""
        out.append(Assessment(part, paragraph_end(blocks, n.line), Mark.RED, feedback,
                              near, quote))
    return out


def source_line_like(line: str, sources: SourceSet) -> tuple[str, Passage] | None:
    """The sources' own version of a failing line (`loss.backward()` for `loss.backwards()`)."""
    best: tuple[float, str, Passage] | None = None
    for p in sources.passages:
        candidates = p.text.split("\n") if p.kind == "code" else list(p.terms)
        for cand in candidates:
            cand = cand.split("#")[0].strip() if p.kind == "code" else cand.strip()
            if not cand or cand == line:
                continue
            ratio = difflib.SequenceMatcher(None, line, cand).ratio()
            if ratio >= _FIX_SIMILARITY and (best is None or ratio > best[0]):
                best = (ratio, cand, p)
    return (best[1], best[2]) if best else None


def where(passage: Passage) -> str:
    """A short citation for a card: the file's name and the last two headings."""
    section = SEP.join(passage.section.split(SEP)[-2:])
    return f"{Path(passage.file).name} § {section}"


def failing_line(code_lines: Sequence[str], exception: str) -> str | None:
    """The code line an exception names (`'Tensor' object has no attribute 'backwards'`)."""
    m = re.search(r"\(line (\d+)\)", exception)
    if m and 0 < int(m.group(1)) <= len(code_lines):
        return code_lines[int(m.group(1)) - 1].strip() or None
    names = re.findall(r"'([A-Za-z_][\w.]*)'", exception)
    for name in reversed(names):
        for line in code_lines:
            if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", line) and line.strip():
                return line.strip()
    return None
