"""What each part of the recall is about in the sources, and what it leaves out.

A part is about the section closest to its whole text and each section that two or more of
its statements recall (`sections_about`). The key points of those sections' *regions* (a
top-level section, or a section under a file's single title: its subsections and
neighbours) that the learner never mentions are omission candidates, minus those in a
source sentence a claim restates in other words; each goes to the part whose own text is
closest to its section, among the parts about its region. First come the concepts a claim
drops from the very sentence it recalls (`dropped_terms`) or that a sentence the learner
breaks off would have named (`gap_contexts`), then those of a section the part skips
(`skipped_sections`): they belong to that part. Offline, the best few go straight into the
graded notes as 🟡 omissions; with a model, they are the candidates each part is shown.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from ankigen import phrases as ph

from .model import Claim, KeyPoint, Passage
from .retrieve import Index, content_tokens, overlap, same_word, share
from .sources import SEP, SourceSet

TOP_K = 3  # passages per query; a claim gets up to TOP_K + 2 from two queries
# What a model judging from retrieved passages is offered per claim: wider, because a wrong
# claim shares fewer words with the passage that contradicts it than a right one does
# (bench/grader_retrieval.py measures how often the passage settling a tutor-🔴 claim is
# among them).
OFFER_K, OFFER_MAX = 8, 10
NEIGHBOURS_OF = 3  # and the passages beside the best three (offer_for)
COVERED = 0.5  # share of a claim's content words a passage must use to "cover" it
_VOTE_FLOOR = 0.34
_RESTATED = 0.5
_DROPPED = 1 / 3  # dropped_terms: how much of the sentence, and of the claim, the other shares
_MAX_OMISSIONS = 3
_SKIPPED_MAX = 2  # skipped_sections: the longest run of sections a part may skip
_ORIGIN_RANK = {"bold": 0, "heading": 1, "code": 2}  # concepts before API names


@dataclass(frozen=True)
class PartEvidence:
    part: int
    claims: tuple[Claim, ...]
    top: dict[str, list[tuple[Passage, float]]]  # this part's claim ids → best passages
    regions: tuple[str, ...]  # the sections the part is about (sections_about)
    candidates: tuple[KeyPoint, ...]  # key points of those regions the recall never mentions
    # what a model judging from retrieved passages is offered per claim (OFFER_K)
    offered: dict[str, list[tuple[Passage, float]]] = field(default_factory=dict)


# A section as the coverage logic keys it: its file and heading path. Two files may both
# have a "Summary" or an "Exercises" section; keyed by the heading alone they were one.
Section = tuple[str, str]


def section_of(passage: Passage) -> Section:
    return passage.file, passage.section


def _point_section(k: KeyPoint, sources: SourceSet) -> Section:
    return sources.passages[k.passage].file, k.section


def region_of(passage: Passage, titled: frozenset[str]) -> str:
    path = passage.section.split(SEP)
    depth = 2 if passage.file in titled and len(path) >= 2 else 1
    return f"{passage.file}#{SEP.join(path[:depth])}"


def titled_files(passages: Sequence[Passage]) -> frozenset[str]:
    """Files whose sections all sit under one title heading (`# Chapter 12` then `##`s)."""
    tops: dict[str, set[str]] = defaultdict(set)
    deep: set[str] = set()
    for p in passages:
        path = p.section.split(SEP)
        tops[p.file].add(path[0])
        if len(path) >= 2:
            deep.add(p.file)
    return frozenset(f for f, t in tops.items() if len(t) == 1 and f in deep)


def mentioned(term: str, recall_tokens: Sequence[str],
              words: AbstractSet[str] = frozenset()) -> bool:
    """Whether the recall says `term`: a one-word term anywhere; a longer one as a phrase,
    its words at most one word apart ("padding mask" is not said by "pad the input. A causal
    mask"); a short form the learner writes counts unless the sources (`words`) use it as
    a word of its own."""
    # Identifiers count by their words (`torch.inference_mode()` → torch, infer, mode).
    want = list(dict.fromkeys(t for t in content_tokens(term) if not {".", "_"} & set(t)))
    if not want:
        return True
    window = 1 if len(want) == 1 else len(want) + 1
    for i, tok in enumerate(recall_tokens):
        near = recall_tokens[i : i + window]
        if same_word(tok, want[0], words) or len(want) > 1 and any(
                same_word(tok, w, words) for w in want):
            if all(any(same_word(t, w, words) for t in near) for w in want):
                return True
    return False


def passages_for(claim: Claim, topic: str, index: Index, k: int = TOP_K,
                 most: int = TOP_K + 2) -> list[tuple[Passage, float]]:
    """The claim's best passages, read on its own and in its part's context ("the cost goes
    down at every step" means little until you know the part is about SGD)."""
    found: dict[int, tuple[Passage, float]] = {}
    alone: list[int] = []  # the claim's own best passage stays first
    for query in (claim.text, f"{claim.text} {topic}"):
        hits = index.top(query, k + 1)
        alone = alone or [p.id for p, _ in hits[:1]]
        for passage, score in hits:
            if passage.id not in found or found[passage.id][1] < score:
                found[passage.id] = (passage, score)
    ranked = sorted(found.values(), key=lambda ps: (ps[0].id not in alone, -ps[1]))
    return ranked[:most]


def offer_for(claim: Claim, topic: str, index: Index) -> list[tuple[Passage, float]]:
    """What a model judging from retrieved passages is shown for a claim: its OFFER_K best,
    and the passages beside its three best in the same section (the list item after "Mark a
    tensor with `requires_grad=True`" is "Only floating point tensors can require
    gradients", which shares no word with "that works on ints too")."""
    found = passages_for(claim, topic, index, OFFER_K, OFFER_MAX)
    have = {p.id for p, _ in found}
    near: list[tuple[Passage, float]] = []
    for passage, _ in found[:NEIGHBOURS_OF]:
        for i in (passage.id - 1, passage.id + 1):
            if 0 <= i < len(index.passages) and i not in have:
                other = index.passages[i]
                if (other.file, other.section) == (passage.file, passage.section):
                    have.add(i)
                    near.append((other, 0.0))
    return found + near


def gather(parts: Sequence[int], claims: Sequence[Claim], part_texts: dict[int, str],
           recall_text: str, sources: SourceSet, index: Index,
           topics: dict[int, str] | None = None,
           prompted: frozenset[int] = frozenset()) -> list[PartEvidence]:
    """Each part's claims with their passages, and its omission candidates. `recall_text`
    is what counts as said; a claim on a `prompted` line (written after the tutor's mark in
    its part) is judged, but what it recalls is not taken as recalled unprompted."""
    recall_tokens = content_tokens(recall_text)
    top: dict[str, list[tuple[Passage, float]]] = {}
    wide: dict[str, list[tuple[Passage, float]]] = {}
    restated: set[tuple[int, int]] = set()  # (passage id, sentence) a claim restates
    # The concepts a dropped term can be, as written, that the recall never says: the same
    # for every claim, so found once (a big source defines thousands).
    unsaid = [(t, _flat(t)) for t in sorted({k.term for k in sources.points if k.origin != "code"})
              if not mentioned(t, recall_tokens, sources.words)]
    # a dropped concept → (how closely the claim recalls its sentence, the claim's part, it)
    dropped_by: dict[str, tuple[float, int, KeyPoint]] = {}
    recalled: dict[int, set[tuple[str, str]]] = defaultdict(set)  # part → (file, section)s
    for claim in claims:
        topic = (topics or {}).get(claim.part, "")
        found = passages_for(claim, topic, index)
        top[claim.id] = found
        wide[claim.id] = offer_for(claim, topic, index)
        if found and claim.line not in prompted:
            best = found[0][0]
            for k, fit in dropped_terms(claim.text, best, unsaid):
                if fit > dropped_by.get(k.term.lower(), (-1.0,))[0]:
                    dropped_by[k.term.lower()] = (fit, claim.part, k)
            fit = overlap(claim.text, best.text)
            if fit >= _RESTATED:
                restated.update((best.id, i) for i in _restated_sentences(claim.text, best))
            if fit >= _VOTE_FLOOR:
                recalled[claim.part].add((best.file, best.section))
    about = sections_about(parts, [c for c in claims if c.line not in prompted], part_texts,
                           top, index)
    # A sentence the learner breaks off ("The loss is the reconstruction loss plus (can't
    # remember the second term)"): what its source sentence adds is the gap they name,
    # first in its part, even a term that sentence's own passage defines.
    for part in parts:
        for before in gap_contexts(part_texts.get(part, "")):
            found = index.top(f"{before} {(topics or {}).get(part, '')}", 1)
            for k, fit in dropped_terms(before, found[0][0], unsaid, gap=True) if found else []:
                if 1 + fit > dropped_by.get(k.term.lower(), (-1.0,))[0]:
                    dropped_by[k.term.lower()] = (1 + fit, part, k)
    # a term is a candidate once per session; one the learner dropped from a sentence
    # they recalled belongs to the part that recalls that sentence most closely
    dropped: dict[int, list[KeyPoint]] = defaultdict(list)
    for _, part, k in dropped_by.values():
        dropped[part].append(k)
    taken = set(dropped_by)
    skipped = skipped_sections(parts, recalled, sources, recall_tokens, taken)
    taken.update(k.term.lower() for found in skipped.values() for k in found)
    # Every other key point of a section some part is about, that the recall never says
    # and no claim restates, goes to the part whose own text is closest to its section
    # ("cross-attention" to the part about the decoder, not the one about attention
    # scores), provided that part is about the section too.
    closest = closest_parts(parts, part_texts, sources)
    mine_by_part: dict[int, list[KeyPoint]] = defaultdict(list)
    regions = _regions(about, sources)
    for k in _section_candidates(about, regions, sources, recall_tokens):
        if k.term.lower() in taken or _said_in_other_words(k, sources.passages[k.passage],
                                                            restated):
            continue
        at = _point_section(k, sources)
        home = regions[at]
        near = [p for p in parts if any(regions.get(s) == home for s in about.get(p, ()))]
        part = closest.get(at, near[0])
        taken.add(k.term.lower())
        mine_by_part[part if part in near else near[0]].append(k)
    matched = {p: tuple(f"{f}#{s}" for f, s in sorted(about.get(p, set()))) for p in parts}
    out = []
    for part in parts:
        candidates = list({k.term.lower(): k for k in dropped[part]}.values())
        candidates += [k for k in skipped.get(part, []) if k.term.lower() not in
                       {c.term.lower() for c in candidates}]
        candidates += sorted(mine_by_part[part], key=lambda k: (_ORIGIN_RANK[k.origin], k.passage))
        mine = tuple(c for c in claims if c.part == part)
        out.append(PartEvidence(part, mine, {c.id: top[c.id] for c in mine}, matched[part],
                                tuple(candidates), {c.id: wide[c.id] for c in mine}))
    return out


def skipped_sections(parts: Sequence[int], recalled: dict[int, set[tuple[str, str]]],
                     sources: SourceSet, recall_tokens: Sequence[str],
                     taken: set[str]) -> dict[int, list[KeyPoint]]:
    """Key points of the sections a part skips: one or two sections in a row that no claim
    recalls, lying in their file between two sections the part's claims recall, or between
    the part's last one and the next a later part recalls (a learner going through a chapter
    in order who left one out before going on; for the last part, having recalled two
    sections of the file, the end of it),
    a longer stretch being more likely a stray match than a skip. Concepts (bold) before
    headings."""
    order: dict[tuple[str, str], int] = {}
    for p in sources.passages:
        order.setdefault((p.file, p.section), len(order))
    anyone = {s for found in recalled.values() for s in found}
    later = {part: {order[s] for q in parts if q > part for s in recalled.get(q, ())}
             for part in parts}
    files = {i: s[0] for s, i in order.items()}
    out: dict[int, list[KeyPoint]] = {}
    seen = set(taken)
    for part in parts:
        mine = sorted(order[s] for s in recalled.get(part, ()))
        gap: set[int] = set()
        ends = list(zip(mine, mine[1:]))
        if mine:
            # after the part's last section: up to the next one a later part recalls, or,
            # for the session's last part, the end of the file (the learner stopped there);
            # a later part that returns to that last section goes on from it, so what comes
            # after is its gap, not this part's (a k-fold part touching the time-series order
            # did not skip the grouped folds that follow time series splits)
            last = mine[-1]
            after = min((i for i in later[part] if i >= last), default=None)
            if after is None and part == parts[-1] and sum(files[i] == files[last]
                                                           for i in mine) >= 2:
                after = 1 + max(i for s, i in order.items() if s[0] == files[last])
            ends += [(last, after)] if after is not None else []
        for a, b in ends:
            between = [s for s, i in order.items() if a < i < b]
            if between and len(between) <= _SKIPPED_MAX and all(
                    s not in anyone and s[0] == files[a] for s in between):
                gap.update(order[s] for s in between)
        out[part] = sorted((k for k in sources.points
                            if order[(sources.passages[k.passage].file, k.section)] in gap
                            and k.origin != "code" and k.term.lower() not in seen
                            and not mentioned(k.term, recall_tokens, sources.words)),
                           key=lambda k: (_ORIGIN_RANK[k.origin], k.passage))
        seen.update(k.term.lower() for k in out[part])  # each point in one part only
    return out


_GAP_RE = re.compile(r"(?<!\bif )\b(?:I\s+)?(?:forgot|can'?t\s+(?:remember|recall)|cannot\s+"
                     r"(?:remember|recall)|don'?t\s+(?:remember|recall))\b", re.I)


def gap_contexts(text: str) -> list[str]:
    """What a learner wrote before breaking a sentence off ("The loss is the reconstruction
    loss plus (can't remember the second term)" → "The loss is the reconstruction loss
    plus"); not a conditional ("If I forgot the zero_() line …")."""
    out = []
    for sentence in ph.sentences(" ".join(text.split())):
        m = _GAP_RE.search(sentence)
        if m and m.start() > 0:
            out.append(sentence[: m.start()].rstrip(" ,;:-—(🟡"))
    return [b for b in out if b]


def dropped_terms(claim: str, passage: Passage, unsaid: Sequence[tuple[str, str]],
                  gap: bool = False) -> list[tuple[KeyPoint, float]]:
    """Key concepts a claim leaves out of the source sentence it recalls: a sentence of the
    claim's best passage that uses a concept defined elsewhere (bold or a heading, not this
    passage's own term), the claim sharing a third of its other words and it a third of the
    claim's, and the recall never saying the concept. "The decoder block is masked
    self-attention followed by the same feed-forward network" recalls "A decoder block has
    three sublayers: masked (causal) self-attention, then cross-attention …, then the
    feed-forward network" without **cross-attention**. `unsaid`: (concept, its `_flat`
    form) for each concept the recall never says, sorted. Each comes with how much of its
    sentence the claim shares. A broken-off sentence (`gap`) need only recall a third of
    the sentence's words, and may leave out the passage's own term."""
    own = set() if gap else {t.lower() for t in passage.terms} | {
        passage.section.split(SEP)[-1].lower()}
    said = set(content_tokens(claim))
    out = []
    for sentence in sentences_of(passage):
        words, written = content_tokens(sentence), _flat(sentence)
        for term, flat in unsaid:
            # the term as written ("masked (causal) self-attention" does not write "causal
            # mask")
            if flat not in written or term.lower() in own:
                continue
            rest = set(words) - set(content_tokens(term))
            fit = share(rest, said)
            if (gap or fit >= _DROPPED) and overlap(claim, sentence) >= _DROPPED:
                out.append((KeyPoint(term, passage.section, passage.id, "bold"), fit))
    return out


def _flat(text: str) -> str:
    """Lowercase words between spaces: a term is written in a text when its flat form is in
    the text's, case, hyphens and markup aside."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def sentences_of(passage: Passage) -> list[str]:
    return ph.sentences(" ".join(passage.text.split())) or [passage.text]


def _restated_sentences(claim: str, passage: Passage) -> list[int]:
    """The sentences of its best passage that a claim restates, each sharing half of its
    content words ("Unrolling it instead is manifold learning" restates "Algorithms that
    model that manifold are called manifold learning algorithms", not the sentence before
    it that states the **manifold hypothesis**); -1 stands for the passage as a whole."""
    return [-1] + [i for i, s in enumerate(sentences_of(passage)) if overlap(claim, s) >= _RESTATED]


def _said_in_other_words(point: KeyPoint, passage: Passage,
                         restated: set[tuple[int, int]]) -> bool:
    """Whether a claim restates the sentence that holds the key point; a heading, which no
    sentence holds, is said when a claim restates its first passage."""
    holding = [i for i, s in enumerate(sentences_of(passage))
               if mentioned(point.term, content_tokens(s))]
    return any((passage.id, i) in restated for i in holding or [-1])


def closest_parts(parts: Sequence[int], part_texts: dict[int, str],
                  sources: SourceSet) -> dict[Section, int]:
    """Each source section → the part whose text is closest to it: BM25 of the section (its
    heading path and passages) for each part's text, as a share of that part's best section,
    so a long part does not win every section by length alone."""
    sections = list(dict.fromkeys(section_of(p) for p in sources.passages))
    if not parts or not sections:
        return {}
    docs = [Passage(i, f, sources.passages[0].span, s, "prose",
                    " ".join(p.text for p in sources.passages if section_of(p) == (f, s)))
            for i, (f, s) in enumerate(sections)]
    index = Index(docs)
    rows = []
    for part in parts:
        row = index.scores(part_texts.get(part, ""))
        rows.append(row / row.max() if row.max() > 0 else row)
    return {s: parts[max(range(len(parts)), key=lambda i: rows[i][j])]
            for j, s in enumerate(sections)}


def sections_about(parts: Sequence[int], claims: Sequence[Claim], part_texts: dict[int, str],
                   top: dict[str, list[tuple[Passage, float]]], index: Index
                   ) -> dict[int, set[Section]]:
    """The source sections each part is about: the section of the passage closest to the
    part's whole text, and each section holding the best passage of two or more of its
    statements (one statement in passing, or one stray match, does not make a subject)."""
    about: dict[int, set[Section]] = {p: set() for p in parts}
    count: dict[tuple[int, Section], int] = defaultdict(int)
    for claim in claims:
        found = top.get(claim.id)
        if found and overlap(claim.text, found[0][0].text) >= _VOTE_FLOOR:
            count[(claim.part, section_of(found[0][0]))] += 1
    for (part, section), n in count.items():
        if n >= 2:
            about[part].add(section)
    for part in parts:
        best = index.top(part_texts.get(part, ""), 1)
        if best:
            about[part].add(section_of(best[0][0]))
    return about


def _section_candidates(about: dict[int, set[Section]], regions: dict[Section, str],
                        sources: SourceSet, recall_tokens: Sequence[str]) -> list[KeyPoint]:
    """The key points of the regions the parts are about (a section's chapter-level
    section, which holds its neighbours and subsections: "Feature scaling" under "Gradient
    descent") that the recall never mentions, concepts (bold, headings) before API names; a
    section's own heading is not one when a part is about that section. `regions`:
    `_regions(about, sources)`."""
    sections = {s for found in about.values() for s in found}
    found = [k for k in sources.points if (at := _point_section(k, sources)) in regions
             and not (k.origin == "heading" and at in sections
                      and k.term == k.section.split(SEP)[-1])
             and not mentioned(k.term, recall_tokens, sources.words)]
    found.sort(key=lambda k: (_ORIGIN_RANK[k.origin], k.passage))
    return list({k.term.lower(): k for k in reversed(found)}.values())[::-1]


def _regions(about: dict[int, set[Section]], sources: SourceSet) -> dict[Section, str]:
    """Each section inside a region some part is about → that region: a top-level section,
    or in a file with a single title heading, a section under the title."""
    titled = titled_files(sources.passages)
    region = {section_of(p): region_of(p, titled) for p in sources.passages}
    wanted = {region[s] for found in about.values() for s in found if s in region}
    return {s: r for s, r in region.items() if r in wanted}


def offline_omissions(evidence: PartEvidence) -> list[KeyPoint]:
    """The best few candidates, and at most one API name, said with its idea: a recall is
    about ideas (`torch.inference_mode()` → "inference mode (`torch.inference_mode()`)"; a
    name with no idea in its words, like `torch.long`, is never an omission on its own)."""
    picked: list[KeyPoint] = []
    said: set[str] = set()
    for k in evidence.candidates:
        if k.origin == "code":
            idea = concept_of(k.term)
            if idea is None or any(p.origin == "code" for p in picked):
                continue
            k = replace(k, term=idea)
        if set(content_tokens(k.term)) <= said or any(p.passage == k.passage for p in picked):
            continue  # "Padding and stride" after "zero padding" and "stride"; one per passage
        picked.append(k)
        said.update(content_tokens(k.term))
    return picked[:_MAX_OMISSIONS]


_IDENT_RE = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*")


def concept_of(name: str) -> str | None:
    """An API name said with the idea its words carry, or None when they carry none:
    `torch.inference_mode()` → "inference mode (`torch.inference_mode()`)"; `torch.long`,
    `BatchNorm1d` → None."""
    m = _IDENT_RE.search(name)
    if not m:
        return None
    last = m.group(0).split(".")[-1]
    words = [w for w in last.lower().split("_") if w]
    if len(words) < 2:  # `torch.long`, and class names: `AdamW` is the bold term's twin
        return None
    return f"{' '.join(words)} (`{name.strip('`')}`)"
