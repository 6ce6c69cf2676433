"""A small server-rendered SVG: a learner's marks per chapter over their sessions.

Inline SVG, no script and nothing fetched. 🟢 = 2, 🟡 = 1, 🔴 = 0 (a chapter's parts averaged); a part without a mark is
left out. Colours come from the page's CSS variables, so light and dark both read.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .crud import ChartPoint

SCORE = {"green": 2, "yellow": 1, "red": 0}
LABEL = {2: "green", 1: "yellow", 0: "red"}
LINES = 6  # chapters drawn at most (the most recent ones)
W, H, LEFT, TOP, BOTTOM = 320, 150, 46, 10, 24


def svg(points: Sequence[ChartPoint]) -> str:
    scored = [p for p in points if p.mark in SCORE]
    if not scored:
        return ""
    sessions = sorted({(p.when, p.session_id) for p in scored})
    x_of = {sid: i for i, (_, sid) in enumerate(sessions)}
    chapters: dict[str, dict[int, list[int]]] = {}
    for p in scored:
        assert p.mark is not None
        chapters.setdefault(p.chapter or "(no chapter)", {}).setdefault(
            x_of[p.session_id], []).append(SCORE[p.mark])
    recent = sorted(chapters, key=lambda c: max(chapters[c]), reverse=True)[:LINES]
    span = max(len(sessions) - 1, 1)
    plot_w, plot_h = W - LEFT - 8, H - TOP - BOTTOM

    def xy(x: int, score: float) -> tuple[float, float]:
        return LEFT + plot_w * x / span, TOP + plot_h * (1 - score / 2)

    out = [f'<svg class="chart" viewBox="0 0 {W} {H + 18 * len(recent)}" role="img" '
           f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
           '<title id="chart-title">Marks per chapter over your sessions: green, yellow or '
           'red per session</title>']
    for score, label in LABEL.items():
        _, y = xy(0, score)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - 8}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="4" y="{y + 4:.1f}">{label}</text>')
    out.append(f'<text class="axis" x="{LEFT}" y="{H - 6}">first</text>'
               f'<text class="axis" x="{W - 8}" y="{H - 6}" text-anchor="end">'
               f'latest ({len(sessions)} sessions)</text>')
    for i, chapter in enumerate(recent):
        pts = [xy(x, sum(v) / len(v)) for x, v in sorted(chapters[chapter].items())]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline class="s{i}" fill="none" points="{coords}"/>')
        out += [f'<circle class="s{i}" cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in pts]
        ly = H + 4 + 18 * i
        out.append(f'<rect class="s{i}" x="{LEFT}" y="{ly}" width="12" height="12"/>'
                   f'<text class="legend" x="{LEFT + 18}" y="{ly + 11}">'
                   f'{escape(chapter[:40])}</text>')
    out.append("</svg>")
    return "".join(out)
