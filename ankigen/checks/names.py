"""Wrong PyTorch names, caught by running them.

A learner writes `model.drop()` or `loss.backprop()` from memory, in prose, inline code or
indented pseudo-code. When the receiver is a torch object — made by the learner's own code
(`model = nn.Linear(3, 1)`), or, in a part about PyTorch, known by the role its name has
there (`model` → an `nn.Module`, `loss` → a tensor with a graph, `optimizer` → an
optimizer) — the name is looked up in the sandbox, on a real object of the installed torch.
A name that is not there becomes a card: the real error from running it, and the right call
where the notes, the reference notes or the check bank have one, with a check that runs
both. Nothing here knows which names are wrong: only running decides that.

Three steps, each batched and cached like every other check:
1. `find`: candidate `receiver.name(` uses in recall notes, with their parts' roles (no
   sandbox; cheap).
2. one lookup program per note (and one for the calls the notes, reference notes and bank
   hold), all sent in one `run_many`, each cached by its whole input.
3. one check per wrong name (the wrong call and the right one), through the same code path,
   and cache, as the bank's checks.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import topics
from ..model import CheckOutput, Document, Gap, GapKind, Span
from ..phrases import normalise
from ..text import clean, decode
from .bank import BANK

Extra = list[tuple[Document, Gap, CheckOutput]]

# receiver → role: how a representative torch object is made, where the name alone says it.
# (What a name is *for* in PyTorch code, never which names are wrong.)
ROLES: dict[str, str] = {
    "module": "Model()",
    "tensor": "torch.randn(4, 3)",
    "leaf": "_leaf()",
    "loss": "((torch.randn(4, 3, requires_grad=True) @ torch.randn(3, 1)) ** 2).mean()",
    "optimizer": "torch.optim.SGD(Model().parameters(), lr=0.1)",
    "scheduler": "torch.optim.lr_scheduler.StepLR(torch.optim.SGD(Model().parameters(), lr=0.1), 1)",
    "criterion": "nn.MSELoss()",
    "dataset": "torch.utils.data.TensorDataset(torch.randn(8, 3), torch.randn(8, 1))",
    "loader": "torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3), "
              "torch.randn(8, 1)), batch_size=4)",
    "torch": "torch",
    "nn": "nn",
    "F": "F",
    "optim": "torch.optim",
}
_RECEIVERS: dict[str, str] = {
    **dict.fromkeys(("model", "net", "network", "module", "layer", "encoder", "decoder",
                     "classifier", "mlp", "cnn", "rnn", "lstm"), "module"),
    **dict.fromkeys(("output", "outputs", "out", "logits", "y_pred", "y_hat", "yhat", "pred",
                     "preds", "prediction", "predictions", "x", "X", "y", "t", "tensor",
                     "inputs", "targets", "labels", "xb", "yb", "batch", "grad", "a"), "tensor"),
    **dict.fromkeys(("w", "b", "W", "weights", "weight", "bias", "param", "params"), "leaf"),
    **dict.fromkeys(("loss", "losses", "train_loss", "val_loss"), "loss"),
    **dict.fromkeys(("optimizer", "opt", "optimiser"), "optimizer"),
    **dict.fromkeys(("scheduler", "sched", "lr_scheduler"), "scheduler"),
    **dict.fromkeys(("criterion", "loss_fn", "loss_func", "lossfn"), "criterion"),
    **dict.fromkeys(("dataset", "ds", "train_ds", "valid_ds", "train_dataset"), "dataset"),
    **dict.fromkeys(("loader", "dataloader", "dl", "train_dl", "valid_dl", "train_loader",
                     "val_loader", "test_loader"), "loader"),
    "torch": "torch", "nn": "nn", "F": "F", "optim": "optim",
}
_ALWAYS = frozenset({"torch"})  # `torch.x()` is PyTorch in any part

_USE = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.([A-Za-z_]\w*)\s*\(")
_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=(?!=)\s*(\S.*)$")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_MARKS = ("🟢", "🟡", "🔴")
_TORCH_WORDS = re.compile(r"\btorch\b|pytorch|\bnn\.|\bautograd\b|requires_grad|\btensors?\b|"
                          r"\.backward\(|\boptim\.", re.I)
_OTHER_WORDS = re.compile(r"scikit|sklearn|\bkeras\b|tensorflow|\btf\.|xgboost|lightgbm|\bjax\b",
                          re.I)
_CANDIDATE_BYTES = re.compile(rb"[A-Za-z_]\.[A-Za-z_]\w*\s*\(")


@dataclass
class Use:
    """`receiver.name(` as the learner wrote it."""

    doc: Document
    part: int
    line: int
    expr: str  # the receiver as written: `model`, `w.grad`
    name: str
    context: str  # the learner's sentence around it, for the front
    scope: int  # index of the lookup scope (a part) in the note's program
    meant: str = ""  # the clause that leads up to it: what the call was for


@dataclass
class Scope:
    """One part of a note: its assignments (run in order) and the receivers to look up."""

    assign: list[str] = field(default_factory=list)
    look: dict[str, list[str]] = field(default_factory=dict)  # expr → names
    roles: bool = False  # a part about PyTorch: a receiver's name may give its role

    def spec(self) -> dict[str, Any]:
        return {"assign": self.assign, "look": {k: sorted(set(v)) for k, v in
                                                sorted(self.look.items())},
                "roles": self.roles}


@dataclass
class Found:
    uses: list[Use]
    programs: dict[str, list[Scope]]  # note path → its scopes
    candidates: list[Candidate]


@dataclass(frozen=True)
class Candidate:
    """A call some text holds, that may be the right one: `optimizer.zero_grad()`."""

    call: str  # as written there
    expr: str
    name: str
    where: str  # "your notes" | "reference-x.md" | "the check bank"
    words: str  # what that text says around it (bank: its title and what it shows)
    rank: int  # 0 the note itself, 1 reference notes, 2 other notes, 3 the bank


# --- 1. finding uses -----------------------------------------------------------------------


def _text(doc: Document, sources: Mapping[str, bytes]) -> list[str] | None:
    data = sources.get(doc.path)
    if data is None or not _CANDIDATE_BYTES.search(data):
        return None
    return decode(data, doc.path).text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _learner_text(line: str) -> str:
    """The learner's own words on a line: no tutor marks, `=>` answers or `>` quotes."""
    s = line.strip()
    if not s or s.startswith(("=>", ">", "#", "```", "~~~")) or s.startswith(_MARKS):
        return ""
    for cut in ("=>", *_MARKS):
        s = s.split(cut, 1)[0]
    return line[: len(line) - len(line.lstrip())] + s.strip()


def is_pytorch(text: str) -> bool:
    torch_words = len(_TORCH_WORDS.findall(text))
    return torch_words > 0 and torch_words > len(_OTHER_WORDS.findall(text))


def _statements(line: str) -> list[str]:
    """Assignments a line of code holds: the line itself, or `inline code` spans in prose."""
    spans = _INLINE_CODE.findall(line) or [line]
    out = []
    for s in spans:
        code = s.split("#", 1)[0].strip()
        if _ASSIGN.match(code) and not code.endswith(":"):
            out.append(code)
    return out


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def _context(lines: list[str], i: int, start: int, at: int) -> tuple[str, str]:
    """(the sentence the call at column `at` sits in, the clause from the call before it)."""
    line = _learner_text(lines[i])
    begin = 0
    sentences = [] if "#" in line or line[:1].isspace() else list(_SENTENCE.finditer(line))
    for m in sentences:
        if m.end() <= at:
            begin = m.end()
    end = next((m.start() for m in sentences if m.start() > at), len(line))
    call_end = line.find(")", at)
    before = [m.end() for m in _USE.finditer(line, begin, at)]
    clause = line[max([begin, *before]): (call_end + 1 if call_end >= 0 else end)]
    own = line[begin:end].strip().strip("`")
    words = _USE.sub(" ", own)
    if len(re.findall(r"[A-Za-z]{3,}", words)) < 3:  # a line of code: say what it was for
        for j in range(i - 1, max(start - 1, i - 3), -1):
            prev = _learner_text(lines[j]).strip()
            if prev:
                own = f"{prev} {own}"
                clause = f"{prev} {clause}"
                break
    return " ".join(own.split())[:300], " ".join(clause.split())[:300]


def find(docs: Sequence[Document], sources: Mapping[str, bytes]) -> Found:
    """Every `receiver.name(` in the learner's recall whose receiver may be a torch object,
    and the calls that the notes, reference notes and the bank hold (maybe the right ones)."""
    uses: list[Use] = []
    programs: dict[str, list[Scope]] = {}
    candidates: list[Candidate] = []
    for doc in docs:
        lines = _text(doc, sources)
        if lines is None:
            continue
        if doc.kind == "reference":
            candidates += _calls_in(lines, 1, doc.path.rsplit("/", 1)[-1])
            continue
        candidates += _calls_in(lines, 0, "your notes")
        scopes: list[Scope] = []
        goal_torch = is_pytorch(doc.goal + " " + doc.title)
        for part in doc.parts:
            rows = range(part.span.start - 1, min(part.span.end, len(lines)))
            text = "\n".join(lines[i] for i in rows)
            torch_part = is_pytorch(text) or (not _OTHER_WORDS.search(text) and goal_torch)
            scope = Scope(roles=torch_part)
            mine: list[Use] = []
            for i in rows:
                own = _learner_text(lines[i])
                if not own:
                    continue
                scope.assign += _statements(own)
                for m in _USE.finditer(own):
                    expr, name = m.group(1), m.group(2)
                    root = expr.split(".", 1)[0]
                    if not (torch_part or root in _ALWAYS or _assigned(root, scope.assign)):
                        continue
                    said, meant = _context(lines, i, part.span.start, m.start())
                    mine.append(Use(doc, part.index, i + 1, expr, name, said, len(scopes),
                                    meant))
            if mine:
                for u in mine:
                    scope.look.setdefault(u.expr, []).append(u.name)
                uses += mine
                scopes.append(scope)
        if scopes:
            programs[doc.path] = scopes
    for check in BANK:
        for m in _USE.finditer(check.code):
            if m.group(1).split(".", 1)[0] not in _RECEIVERS:
                continue
            line = check.code[check.code.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0]
            about = f"{check.title}; {check.demonstrates}"  # only where it names this call
            candidates.append(Candidate(_call_text(line, m), m.group(1), m.group(2),
                                        f"the check bank: “{check.title}”",
                                        about if m.group(2) in about else "", 3))
    unique = {(c.expr, c.name, c.where): c for c in reversed(candidates)}  # the first of each
    return Found(uses, programs, sorted(unique.values(), key=candidates.index))


def _assigned(root: str, assign: list[str]) -> bool:
    return any(re.match(rf"\s*(?:\w+\s*,\s*)*{re.escape(root)}\b", a) for a in assign)


def _call_text(line: str, m: re.Match[str]) -> str:
    """The call from its receiver to its closing parenthesis, when it closes on the line."""
    at = line.find(m.group(0))
    text = line[at:] if at >= 0 else m.group(0)
    depth = 0
    for k, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[: k + 1]
    return f"{m.group(1)}.{m.group(2)}()"


def _calls_in(lines: list[str], rank: int, where: str) -> list[Candidate]:
    out = []
    for line in lines:
        if _USE.search(line) is None:
            continue
        for m in _USE.finditer(line):
            root = m.group(1).split(".", 1)[0]
            if root in _RECEIVERS:
                out.append(Candidate(_call_text(line, m), m.group(1), m.group(2), where,
                                     clean(line.strip())[:300], rank))
    return out


# --- 2. looking them up --------------------------------------------------------------------

_PRELUDE = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
_HELPERS = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x):
        return self.linear(x)


def _leaf():
    t = torch.randn(3, requires_grad=True)
    (t * 2).sum().backward()
    return t

'''
# The lookup program builds its objects as a card's check does (_PRELUDE, _HELPERS).
_PROGRAM = "import difflib, inspect, json\n" + _PRELUDE + _HELPERS + r'''
ROLES = ROLES_JSON
RECEIVERS = RECEIVERS_JSON
SPEC = SPEC_JSON
KINDS = ((torch.Tensor, "tensor"), (nn.Module, "module"), (torch.optim.Optimizer, "optimizer"),
         (torch.optim.lr_scheduler.LRScheduler, "scheduler"),
         (torch.utils.data.DataLoader, "loader"), (torch.utils.data.Dataset, "dataset"))


def kind(obj):
    if inspect.ismodule(obj):
        return "module:" + obj.__name__ if obj.__name__.split(".")[0] == "torch" else None
    for cls, k in KINDS:
        if isinstance(obj, cls):
            return k
    return "torch" if type(obj).__module__.split(".")[0] == "torch" else None


def first_line(obj):
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())[:200]


result = []
for scope in SPEC:
    ns = {"torch": torch, "nn": nn, "F": F, "optim": torch.optim, "Model": Model,
          "_leaf": _leaf}
    made = {}
    for stmt in scope["assign"]:
        try:
            exec(stmt, ns)
        except BaseException:
            continue
        for target in stmt.split("=", 1)[0].split(","):
            made[target.strip()] = stmt
    out = {}
    for expr, names in scope["look"].items():
        root = expr.split(".")[0]
        how = "code"
        if root in made:
            setup = [made[root]]
        elif root in RECEIVERS and (scope["roles"] or root == "torch"):
            how = "role"
            setup = [] if ROLES[RECEIVERS[root]] == root else \
                [root + " = " + ROLES[RECEIVERS[root]]]
            try:
                for s in setup:
                    exec(s, ns)
            except BaseException:
                continue
        else:
            continue
        try:
            obj = eval(expr, ns)
        except BaseException:
            continue
        k = kind(obj)
        if k is None:
            continue
        entry = {"kind": k, "type": type(obj).__name__, "how": how, "setup": setup, "names": {}}
        for name in names:
            try:
                attr = getattr(obj, name)
            except AttributeError as exc:
                entry["names"][name] = {"ok": False,
                                        "error": type(exc).__name__ + ": " + str(exc),
                                        "near": difflib.get_close_matches(
                                            name, [n for n in dir(obj)
                                                   if not n.startswith("_")], 3, 0.75)}
            except BaseException as exc:
                entry["names"][name] = {"ok": None, "error": type(exc).__name__}
            else:
                entry["names"][name] = {"ok": True, "doc": first_line(attr)}
        out[expr] = entry
    result.append(out)
print("@@ankigen-names@@" + json.dumps(result))
'''


def program(scopes: list[dict[str, Any]]) -> str:
    return (_PROGRAM.replace("ROLES_JSON", repr(ROLES))
            .replace("RECEIVERS_JSON", repr(_RECEIVERS))
            .replace("SPEC_JSON", repr(json.loads(json.dumps(scopes)))))


def _parse(stdout: str) -> list[dict[str, Any]] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("@@ankigen-names@@"):
            try:
                data = json.loads(line[len("@@ankigen-names@@"):])
            except ValueError:
                return None
            return data if isinstance(data, list) else None
    return None


def lookup(specs: dict[str, list[dict[str, Any]]], runner: Callable[[], Any], cache: Any,
           setting: Any) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Run (or fetch from the cache) each program: name → its scopes' results. One
    `run_many` for all of them."""
    found: dict[str, list[dict[str, Any]]] = {}
    todo: dict[str, tuple[str, str]] = {}
    for what, scopes in specs.items():
        code = program(scopes)
        key = setting.key("names", code)
        hit = cache.get(key)
        if hit is not None:
            found[what] = hit["scopes"]
        else:
            todo[what] = (key, code)
    if not todo:
        return found, 0
    whats = list(todo)
    for what, res in zip(whats, runner().run_many([todo[w][1] for w in whats]), strict=True):
        data = _parse(res.stdout) if res.status == "ok" else None
        if data is None or len(data) != len(specs[what]):
            continue  # a hang or crash says nothing about the names: tried again next build
        cache.put(todo[what][0], {"scopes": data})
        found[what] = data
    return found, len(whats)


# --- 3. what the learner meant, and the card -----------------------------------------------

# Words that name the same idea in PyTorch prose: "drop the gradients" is what
# `zero_grad` "resets". A vocabulary of ideas, not of wrong names.
_IDEAS = (("grad", "grad"), ("weight", "param"), ("bias", "param"), ("param", "param"),
          ("drop", "reset"), ("clear", "reset"), ("reset", "reset"), ("zero", "reset"),
          ("empty", "reset"), ("chang", "update"), ("updat", "update"), ("adjust", "update"),
          ("optim", "optim"), ("predict", "forward"), ("infer", "forward"),
          ("forward", "forward"), ("backprop", "backward"), ("backward", "backward"),
          ("comput", "compute"), ("calcul", "compute"), ("eval", "eval"), ("train", "train"),
          ("devic", "device"), ("gpu", "device"), ("cuda", "device"), ("save", "save"),
          ("load", "load"), ("detach", "detach"), ("no_grad", "nograd"))
_STOP = frozenset("the and with that this then them they for from into onto are was were "
                  "you your our its has have had not but can could will would should still "
                  "need needs end also just done nicer lastly repeat use used using call "
                  "called all each every one two does did doing what which when there here "
                  "get got make made like".split())


def _ideas(text: str) -> set[str]:
    out = set()
    for word in re.findall(r"[A-Za-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text)):
        w = word.lower()
        if len(w) < 3 or w in _STOP:
            continue
        out.add(next((idea for prefix, idea in _IDEAS if w.startswith(prefix)), w[:6]))
    return out


@dataclass(frozen=True)
class Right:
    call: str
    expr: str
    where: str
    setup: tuple[str, ...]


def right_calls(use: Use, kind: str, candidates: list[Candidate],
                known: dict[tuple[str, str], dict[str, Any]], near: Sequence[str] = (),
                top: int = 3) -> list[Right]:
    """The call the notes, reference notes or the bank hold that best fits what the learner
    meant, best first: a name spelled nearly the same on the same kind of object (torch's
    own near names, found by running), or one whose own words (its line, the bank's title,
    torch's docstring) share the ideas around the wrong call. Running decides among them."""
    root = use.expr.split(".", 1)[0]
    want = _ideas(_USE.sub(lambda m: f" {m.group(2)} ", use.meant or use.context)) | \
        _ideas(use.name)
    want -= _ideas(root)
    scored: dict[str, tuple[float, int, int, Right]] = {}
    for n, c in enumerate(candidates):
        info = known.get((c.expr, c.name))
        if info is None or (c.expr, c.name) == (use.expr, use.name):
            continue
        same_kind = info["kind"] == kind
        spelled = difflib.SequenceMatcher(None, use.name, c.name).ratio()
        words = "" if use.context and use.context in c.words else c.words  # its own line
        have = _ideas(f"{c.expr} {c.name} {words} {info['doc']}")
        shared = len(want & have)
        near_name = (spelled >= 0.75 or c.name in near) and same_kind
        if not (shared or near_name):
            continue
        score = shared + (0.5 if same_kind else 0.0)
        c_root = c.expr.split(".", 1)[0]
        if _RECEIVERS.get(use.name, use.name) == _RECEIVERS.get(c_root, c_root):
            score += 1.0  # `model.optimizer()`: a call of the optimizer's
        if c_root == root or _RECEIVERS.get(c_root, c_root) == _RECEIVERS.get(root, root):
            score += 1.0
        if info["kind"].startswith("module:") and not kind.startswith("module:"):
            score -= 1.0  # a method was meant, not a function of a module
        if near_name:
            score += 3.0
        if score < 1.5:
            continue
        right = Right(c.call, c.expr, c.where, tuple(info["setup"]))
        if c.call not in scored or scored[c.call][:2] < (score, -c.rank):
            scored[c.call] = (score, -c.rank, -n, right)
    return [r[3] for r in sorted(scored.values(), key=lambda r: r[:3], reverse=True)[:top]]


_KIND_WORDS = {"tensor": "a tensor", "module": "an nn.Module", "optimizer": "an optimizer",
               "scheduler": "a learning-rate scheduler", "loader": "a DataLoader",
               "dataset": "a Dataset", "torch": "a torch object"}


def _kind_words(kind: str, type_name: str) -> str:
    if kind.startswith("module:"):
        return f"the module {kind[7:]}"
    return _KIND_WORDS.get(kind, "a torch object") + (
        f" (`{type_name}`)" if kind in ("optimizer", "scheduler") or
        (kind == "module" and type_name != "Model") else "")


def check_code(use: Use, setup: list[str], right: Right | None) -> str:
    needs_helpers = any("Model" in s or "_leaf" in s for s in
                        [*setup, *(right.setup if right else ())])
    code = _PRELUDE + (_HELPERS if needs_helpers else "") + "".join(s + "\n" for s in setup)
    wrong = f"{use.expr}.{use.name}()"
    if right is None:
        return code + wrong + "\n"
    code += (f"try:\n    {wrong}\nexcept AttributeError as exc:\n"
             f"    print({wrong + ':'!r}, type(exc).__name__ + ':', exc)\n")
    for s in right.setup:
        if s not in setup:
            code += s + "\n"
    return code + f"{right.call}\nprint({right.call + ': runs'!r})\n"


def gap_for(use: Use, entry: dict[str, Any], error: str, right: Right | None
            ) -> tuple[Gap, str]:
    doc = use.doc
    part = next((p for p in doc.parts if p.index == use.part), None)
    topic = topics.topic_at(doc, use.line) if part else topics.plain(doc.title)
    wrong = f"{use.expr}.{use.name}()"
    said = use.context if len(use.context.split()) <= 45 else \
        " ".join(use.context.split()[:45]) + " …"
    prompt = (f"{topic} — you wrote: “{said}”. `{wrong}` does not exist on "
              f"{_kind_words(entry['kind'], entry['type'])}: what is the real call for what you "
              "meant?")
    answer = f"Running `{wrong}` fails with:\n\n```\n{error}\n```\n\n"
    if right is not None:
        answer += f"The right call: `{right.call}` (from {right.where})."
    else:
        answer += ("Your notes, the reference notes and the check bank hold no right call for "
                   "this: look it up and add it under the line, then rebuild.")
    section = next((s.title for s in reversed(doc.sections) if s.line <= use.line), doc.title)
    gap = Gap(kind=GapKind.WRONG_NAME, mark=None, line=use.line, span=Span(use.line, use.line),
              part=use.part, topic=topic, chapter=part.chapter if part else None,
              section=section, prompt=prompt, context=use.context, answer=answer,
              answer_source="run", code=wrong,
              anchor=normalise(f"wrong name {wrong} {use.context}")[:400])
    title = f"Your call and the right one, {right.call}, run at build" if right else \
        "Your call, run at build"
    return gap, title


def _covered(doc: Document, use: Use) -> bool:
    """A wrong line the tutor already flagged (its own card says what is wrong with it)."""
    call = f"{use.expr}.{use.name}("
    for g in doc.gaps:
        if g.kind is GapKind.WRONG_CODE and g.code and call in g.code:
            return True
        if use.line in g.span and g.answer and re.search(rf"\b{re.escape(use.name)}\b",
                                                         g.answer):
            return True
    return False


def name_gaps(found: Found, runner: Callable[[], Any], cache: Any, setting: Any,
              run_codes: Callable[[dict[str, tuple[str, str, tuple[str, str] | None]]],
                                  tuple[dict[str, CheckOutput], int, str]]
              ) -> tuple[Extra, int, int]:
    """(gaps with their checks' outputs, runs, names looked up)."""
    if not found.uses:
        return [], 0, 0
    specs = {path: [s.spec() for s in scopes] for path, scopes in found.programs.items()}
    looked = {(u.expr, u.name) for u in found.uses}
    cands = [c for c in found.candidates if (c.expr, c.name) not in looked or c.rank < 3]
    cand_scope = Scope(roles=True)
    for c in cands:
        cand_scope.look.setdefault(c.expr, []).append(c.name)
    if cands:
        specs["\x00candidates"] = [cand_scope.spec()]
    results, ran = lookup(specs, runner, cache, setting)
    known: dict[tuple[str, str], dict[str, Any]] = {}
    for expr, entry in (results.get("\x00candidates") or [{}])[0].items():
        for name, info in entry["names"].items():
            if info.get("ok"):
                known[(expr, name)] = {"kind": entry["kind"], "setup": entry["setup"],
                                       "doc": info.get("doc", "")}
    planned: dict[str, tuple[str, str, tuple[str, str] | None]] = {}
    made: list[tuple[Use, dict[str, Any], str, list[Right], str]] = []
    seen: set[tuple[str, str]] = set()
    for use in found.uses:
        scopes = results.get(use.doc.path)
        if scopes is None:
            continue
        entry = scopes[use.scope].get(use.expr)
        info = entry and entry["names"].get(use.name)
        if not info or info.get("ok") is not False:
            continue  # it exists, or it could not be looked up: no card
        error = clean(info["error"])
        if (use.doc.path, error) in seen or _covered(use.doc, use):
            continue
        seen.add((use.doc.path, error))
        assert entry is not None
        rights = right_calls(use, entry["kind"], cands, known, info.get("near") or ())
        at = f"{use.doc.path}\x1f{use.line}\x1f{use.expr}.{use.name}"
        for i, right in enumerate([*rights, None]):  # each that may be right, and the wrong alone
            planned[f"{at}\x1e{i}"] = ("", check_code(use, list(entry["setup"]), right), None)
        made.append((use, entry, error, rights, at))
    if not planned:
        return [], ran, len(looked)
    outputs, checks_ran, _note = run_codes(planned)
    extra: Extra = []
    for use, entry, error, rights, at in made:
        # the first right call that really runs beside the wrong one; else the wrong one alone
        i = next((i for i in range(len(rights)) if outputs[f"{at}\x1e{i}"].status == "ok"),
                 len(rights))
        right = rights[i] if i < len(rights) else None
        gap, title = gap_for(use, entry, error, right)
        extra.append((use.doc, gap, replace(outputs[f"{at}\x1e{i}"], title=title)))
    return extra, ran + checks_ran, len(looked)


__all__ = ["Found", "find", "is_pytorch", "name_gaps", "program", "right_calls"]
