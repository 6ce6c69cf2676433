"""Which fenced blocks are Python, and IPython notation taken out so the rest can run.

Real notes fence shell, YAML, BibTeX and sample output without a language, and books
written as notebooks (d2l) tag their code ```` ```{.python .input} ```` and start cells
with `%%tab pytorch` or `%matplotlib inline`. Only Python is ever run or read for claims
(docs/checks.md, "Which blocks are Python"). Pure text: the parser needs it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

PYTHON_LANGS = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3"})
_ATTR_CLASS_RE = re.compile(r"\.([\w+-]+)")
# Calls that only Python code makes: a plain word applied to something in sample output
# (`tensor([1., 2.])`, `Hello(World)`) is not enough.
_BUILTIN_CALLS = frozenset({"print", "len", "range", "enumerate", "zip", "sorted", "isinstance",
                            "open", "super", "list", "dict", "set", "tuple", "sum", "min",
                            "max", "abs", "round", "type", "repr", "map", "filter", "iter",
                            "next", "hasattr", "getattr", "setattr"})
_PYTHONIC = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
             ast.For, ast.While, ast.With, ast.Try, ast.Lambda, ast.Return)


def fence_lang(info: str) -> str:
    """A fence's language, lower-case: the first word of its info string, or the first
    class of a pandoc/d2l attribute block (`{.python .input}` → `python`, `{r}` → `r`)."""
    info = info.strip()
    if info.startswith("{"):
        inside = info[1:].split("}", 1)[0]
        classes = _ATTR_CLASS_RE.findall(inside)
        if classes:
            return classes[0].lower()
        return (inside.replace(",", " ").split() or [""])[0].lower()
    return (info.split() or [""])[0].lower()


def is_python(lang: str, code: str) -> bool:
    """Whether a fenced block is Python: tagged so, or untagged and it both parses as
    Python (IPython lines aside) and looks like it (`looks_like_python`)."""
    if lang in PYTHON_LANGS:
        return True
    return not lang and looks_like_python(prepare(code).code)


def looks_like_python(code: str) -> bool:
    """Parses as Python and holds something only a program holds: an import, a def or
    class, a loop, `with`, `try`, a lambda, or a call of a method or of a builtin such as
    `print`. Shell lines, BibTeX, most YAML and sample output (`tensor([1., 2.])`, a bare
    number, `key: value`, which Python reads as an annotation) fail one test or the other."""
    tree = syntax_tree(code)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, _PYTHONIC):
            return True
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) or (isinstance(f, ast.Name) and f.id in _BUILTIN_CALLS):
                return True
    return False


@dataclass(frozen=True)
class Prepared:
    """A block as it is run: `code` (line for line the block, IPython lines made `pass`),
    the lines left out, and why the block is not Python at all, if it is not."""

    code: str
    removed: tuple[str, ...] = ()
    not_python: str | None = None

    @property
    def shell(self) -> bool:
        """Whether a shell line (`!wget …`) was left out: files it would make are missing."""
        return any(line.startswith("!") for line in self.removed)


NBSP = "non-breaking spaces (U+00A0) read as spaces"
_KEEP_CELL = frozenset({"time", "timeit", "capture", "prun"})  # the body is still Python
_TIMING_RE = re.compile(r"^%(?:time|timeit|prun)\s+(?:-\S+\s+)*(?P<stmt>\S.*)$")
_SHELL_ASSIGN_RE = re.compile(r"^[\w\s,()\[\]]+=\s*[!%]")


def prepare(code: str) -> Prepared:
    """The block as Python can run it. Valid Python is left alone. Otherwise IPython's
    line magics (`%matplotlib inline`, `%pip install …`), shell escapes (`!ls`) and help
    (`obj?`) become `pass` at their indentation, `%time stmt` becomes `stmt`, and a cell
    magic whose body is Python (`%%time`, d2l's `%%tab pytorch`) is dropped; a cell magic
    that makes the cell another language (`%%bash`, `%%writefile`), d2l's cell for another
    framework, or a shell result assigned to a name is not Python. What still does not
    parse is left as written (its SyntaxError is the note's). Non-breaking spaces, which
    pasting from a web page leaves in code, are read as spaces when that makes it parse."""
    if parses(code):
        return Prepared(code)
    if "\xa0" in code:  # copied from a web page: U+00A0 for spaces is a SyntaxError
        spaced = prepare(code.replace("\xa0", " "))
        if spaced.code != code.replace("\xa0", " ") or parses(spaced.code):
            return Prepared(spaced.code, (NBSP, *spaced.removed), spaced.not_python)
    lines = code.split("\n")
    out: list[str] = []
    removed: list[str] = []
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    for i, line in enumerate(lines):
        s = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if s.startswith("%%"):
            name, _, rest = s[2:].partition(" ")
            if i != first:
                return Prepared(code, not_python=f"IPython cell magic not at the top: {s}")
            if name == "tab":
                tabs = {t.strip(",").lower() for t in rest.split()}
                if not tabs & {"pytorch", "all"}:
                    return Prepared(code, not_python=f"d2l's cell for another framework: {s}")
            elif name not in _KEEP_CELL:
                return Prepared(code, not_python=f"IPython cell magic, not Python: {s}")
            out.append(indent + "pass")
            removed.append(s)
        elif _SHELL_ASSIGN_RE.match(s):
            return Prepared(code, not_python=f"IPython syntax, runs only in Jupyter: {s}")
        elif s.startswith(("%", "!")) or (s.endswith("?") and s[:-1].replace(".", "").isidentifier()):
            m = _TIMING_RE.match(s)
            out.append(indent + (m.group("stmt") if m else "pass"))
            removed.append(s)
        else:
            out.append(line)
    if not removed:
        return Prepared(code)
    prepared = "\n".join(out)
    return Prepared(prepared, tuple(removed)) if parses(prepared) else Prepared(code)


def syntax_tree(code: str, mode: str = "exec") -> ast.AST | None:
    """Python's parse of `code`, or None when it is not Python. A null byte is a ValueError,
    not a SyntaxError; a line nested thousands deep (`x.b.b.b…`, `-----…1`) exhausts the
    parser's recursion or memory: a note's text is untrusted, so all of these mean no."""
    try:
        return ast.parse(code, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def parses(code: str) -> bool:
    """Whether Python's own parser accepts `code`."""
    return syntax_tree(code) is not None
