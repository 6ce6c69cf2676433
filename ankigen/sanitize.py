"""HTML a note holds, made safe for a card: nh3 (the ammonia sanitizer), never regexes.

A note is untrusted text: `<script>`, `on…=` handlers, `javascript:` URLs, `<iframe>`,
`<style>` and inline `style` are removed; formatting tags (tables, `<details>`, `<kbd>`,
`<sub>`, `<mark>` …) stay. `<img>` keeps `src`, `alt`, `title`, `width` and `height`
(relative `src` included: media.py rewrites it to the packed file). `class` is kept,
since the note type's CSS styles by class; nothing else carries style.
"""

from __future__ import annotations

import functools

import nh3

# Tags kept, each with its text; ammonia's safe defaults plus what cards render themselves.
ALLOWED_TAGS = frozenset(nh3.ALLOWED_TAGS | {"tfoot", "section", "aside"})
_ATTRS: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRS.setdefault("img", set()).update({"src", "alt", "title", "width", "height"})
_ATTRS.setdefault("a", set()).update({"href", "title"})
_ATTRS["abbr"] = {"title"}
_ATTRS["*"] = {"class", "lang", "dir"}
ALLOWED_ATTRIBUTES = {k: frozenset(v) for k, v in _ATTRS.items()}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Removed with everything inside them: their content is code or chrome, not the note's text.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "noscript",
                                  "template", "svg", "math", "select", "textarea", "head",
                                  "title"})

# Every element name HTML defines: a note's `<kbd>` or `<script>` is HTML (sanitized), while
# `List<String>` or `<T>` is the learner's text and is shown as written (md_rules.py).
KNOWN_TAGS = frozenset(ALLOWED_TAGS | DROPPED_WITH_CONTENT | {
    "address", "applet", "audio", "base", "basefont", "bgsound", "blink", "body", "button",
    "canvas", "dialog", "dir", "fieldset", "font", "form", "frame", "frameset", "html",
    "input", "keygen", "label", "legend", "link", "main", "marquee", "menu", "meta", "meter",
    "nobr", "noembed", "noframes", "optgroup", "option", "output", "param", "picture",
    "plaintext", "progress", "search", "slot", "source", "track", "video", "xmp", "datalist",
    "figure", "figcaption", "s", "u", "center", "strike", "big", "tt", "image",
})


@functools.cache
def _cleaner() -> nh3.Cleaner:
    # Built once: nh3.clean() builds its sanitizer on every call (~200 us against ~5 us).
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


def clean(fragment: str) -> str:
    """`fragment` with only safe tags and attributes left (nh3)."""
    return _cleaner().clean(fragment)
