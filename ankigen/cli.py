"""`ankigen`: thin click commands over the library. No logic beyond arguments and output.

Start-up is part of every command: this module imports click and nothing heavy. Each
command imports what it needs when it runs, and the rich consoles are made on first use
(`ankigen --version` and `--help` never load rich, the parser or genanki).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .errors import AnkigenError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from .build import BuildResult

F = TypeVar("F", bound=Callable[..., Any])
# emoji=False: notes and Anki searches hold ":id:"-like text that must print as written
# (rich would turn `tag:ankigen::id::…` into `tag:ankigen:🆔:…`, a search that finds nothing).
_CONSOLES: dict[str, dict[str, Any]] = {
    "err": {"stderr": True, "highlight": False, "emoji": False},
    "out": {"highlight": False, "markup": False, "emoji": False, "soft_wrap": True},
}


def __getattr__(name: str) -> Any:
    """`err` and `out`, the rich consoles, made on first use (importing rich takes longer
    than all of `ankigen --version`); once made, or replaced, they are plain attributes."""
    if name in _CONSOLES:
        from rich.console import Console

        console = Console(**_CONSOLES[name])
        globals()[name] = console
        return console
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _console(name: str) -> Console:
    found = globals().get(name)
    return found if found is not None else __getattr__(name)  # type: ignore[no-any-return]


OPT_OUT = "--unsafe-no-sandbox"  # ankigen.checks.sandbox.OPT_OUT_FLAG, without importing torch's side
OPT_OUT_HELP = ("Run the notes' code WITHOUT the sandbox, as you, with your files and network: "
                "only for notes you trust, where the sandbox cannot run.")
OPT_OUT_WARNING = (f"{OPT_OUT}: the notes' code runs unsandboxed, as this user, with your "
                   "files and network; use it only for notes you trust")


def say(text: str) -> None:
    """A line of plain output: what a note controls never reaches the terminal as control
    characters or escape sequences (`text.clean`)."""
    from .text import clean

    text = clean(text)
    if "\t" not in text and not _may_be_terminal("out"):
        # What rich would print here, byte for byte (it only expands tabs), without
        # importing it: a one-file build's summary must not cost more than the build.
        click.echo(text)
        return
    _console("out").print(text)


def warn(prog: str, text: str) -> None:
    from .text import clean

    click.echo(clean(f"{prog}: warning: {text}"), err=True)


def json_text(data: Any) -> str:
    """JSON on stdout: data kept whole, but nothing a terminal would act on left raw."""
    import json

    from .text import json_safe

    return json_safe(json.dumps(data, indent=2, ensure_ascii=False))


def friendly_for(prog: str) -> Callable[[F], F]:
    """User mistakes become one line on stderr and a non-zero exit, never a traceback."""
    import functools

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except AnkigenError as exc:
                from .text import clean

                click.echo(clean(" ".join(f"{prog}: error: {exc}".split("\n"))), err=True)
                sys.exit(exc.exit_code)

        return wrapper  # type: ignore[return-value]

    return decorate


friendly = friendly_for("ankigen")


@click.group(help="Turn marked recall notes into an Anki deck of exactly what you got wrong.")
@click.version_option(__version__, prog_name="ankigen")
def main() -> None:
    pass


_EXIT_AT_ONCE: list[bool] = []  # a command leaves nothing for the interpreter's own exit
_ONE_SHOT: list[bool] = []  # this is the `ankigen` process itself (run), not a caller's main()
_LEFT: list[object] = []  # a one-shot build's result, freed by os._exit rather than one by one


def run() -> None:
    """The `ankigen` command: `main`, and after a build, `os._exit` once the output is out.

    A build leaves its cards and every module it imported for the interpreter to free one
    by one at exit (25 ms of a one-note build's 160 ms of CPU, measured), which the OS does
    at once. Whatever the build must finish (deck, manifest, cache, threads) is done
    before it returns; the rest of a normal exit is atexit handlers it registers none of.
    """
    import os

    _ONE_SHOT.append(True)
    try:
        main()
    except SystemExit as exc:
        if not _EXIT_AT_ONCE or not isinstance(exc.code, int | None):
            raise
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe: the normal exit says so
            raise exc from None
        os._exit(exc.code or 0)


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def _may_be_terminal(name: str = "err") -> bool:
    """False only where rich's `is_terminal` of console `name` ("err" or "out") is sure to
    be False: that console not made or replaced yet, neither TTY_COMPATIBLE=1 nor
    FORCE_COLOR set, its stream (stderr or stdout) not a tty."""
    import os

    if name in globals() or os.environ.get("TTY_COMPATIBLE") == "1" \
            or os.environ.get("FORCE_COLOR") is not None:
        return True
    try:
        return bool((sys.stderr if name == "err" else sys.stdout).isatty())
    except (AttributeError, ValueError):
        return False


def _progress_cb(progress: Progress) -> Callable[[str, int, int], None]:
    tasks: dict[str, Any] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    return cb


@main.command(help="Build an .apkg from notes files or a vault folder.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("out/ankigen.apkg"),
              show_default=True, help="Where to write the deck (written atomically).")
@click.option("--include-green", is_flag=True, help="Also make cards for 🟢 assessments.")
@click.option("--checks/--no-checks", "run_checks", default=True, show_default=True,
              help="Run the PyTorch checks cards carry (needs the torch extra).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where checks run.")
@click.option("--prune", is_flag=True, help="Forget gaps that vanished from the notes.")
@click.option("--no-cache", is_flag=True, help="Parse every file again.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(OPT_OUT, "unsandboxed", is_flag=True, help=OPT_OUT_HELP)
@click.option("--llm", "use_llm", is_flag=True,
              help="Let a model word each card's front and back from the notes (verified, "
                   "cached; a gap it cannot word keeps its offline card). Needs the llm extra.")
@click.option("--base-url", help="OpenAI-compatible endpoint for --llm, e.g. "
              "http://127.0.0.1:8000/v1 [env: OPENAI_BASE_URL; key: OPENAI_API_KEY].")
@click.option("--model", help="Model name at that endpoint [env: ANKIGEN_MODEL].")
@click.option("-s", "--source", "sources", multiple=True, type=click.Path(path_type=Path),
              help="With --llm: source material the model may answer from (a .md or .txt "
                   "file, or a folder of them; repeatable), beside the vault's reference notes.")
@click.option("--timeout", type=float, default=None,
              help="With --llm: seconds per model request [default: 60].")
@click.option("--budget", type=float, default=None,
              help="With --llm: seconds for all of this build's model calls [default: 300].")
@friendly
def build_cmd(paths: tuple[Path, ...], out: Path, include_green: bool, run_checks: bool,
              device: str, prune: bool, no_cache: bool, as_json: bool,
              unsandboxed: bool, use_llm: bool, base_url: str | None, model: str | None,
              sources: tuple[Path, ...], timeout: float | None, budget: float | None) -> None:
    if sources and not use_llm:
        raise AnkigenError("--source is only used with --llm")
    writer = _card_writer(base_url, model, sources, timeout, budget, read_cache=not no_cache) \
        if use_llm else None
    try:
        result = _build_with(paths, out, include_green, run_checks, device, prune, no_cache,
                             as_json, unsandboxed, writer)
    finally:
        if writer is not None:
            writer.close()
    for w in result.warnings:
        warn("ankigen", w)
    if as_json:
        click.echo(json_text(result.to_dict()))
        return
    _summary(result)


def _build_with(paths: tuple[Path, ...], out: Path, include_green: bool, run_checks: bool,
                device: str, prune: bool, no_cache: bool, as_json: bool, unsandboxed: bool,
                writer: Any) -> BuildResult:
    from .build import build

    _EXIT_AT_ONCE.append(True)
    if _ONE_SHOT:
        # build() pauses the cycle collector and turns it back on when done; the first
        # allocation after that walks every object the build made (~15 ms for 10,000
        # cards) in a process about to end with os._exit. A caller's main() keeps it.
        import gc

        from . import build as building

        gc.disable()
        building.LEFT_FOR_EXIT = []  # see there: os._exit frees it all at once
    if unsandboxed and run_checks:
        warn("ankigen", OPT_OUT_WARNING)
    if as_json or not _may_be_terminal():  # no bar to show: rich need not even load
        hook = _check_hook(device, _no_progress, unsandboxed) if run_checks else None
        result = build(list(paths), out, include_green=include_green, checks=hook,
                       progress=_no_progress, use_cache=not no_cache, prune=prune,
                       writer=writer)
    else:
        from rich import progress as rp

        err = _console("err")
        with rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(),
                         rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), console=err,
                         transient=True, disable=not err.is_terminal) as bar:
            cb = _progress_cb(bar)
            hook = _check_hook(device, cb, unsandboxed) if run_checks else None
            result = build(list(paths), out, include_green=include_green, checks=hook,
                           progress=cb, use_cache=not no_cache, prune=prune, writer=writer)
    if _ONE_SHOT:
        _LEFT.append(result)
    return result


main.add_command(build_cmd, name="build")


def _check_hook(device: str, progress: Callable[[str, int, int], None],
                unsandboxed: bool) -> Any:
    from .checks import build_hook

    return build_hook(device, progress=progress, unsandboxed=unsandboxed)


def _card_writer(base_url: str | None, model: str | None, sources: tuple[Path, ...],
                 timeout: float | None, budget: float | None, *, read_cache: bool) -> Any:
    """The --llm step, or a one-line error before anything is read or written."""
    try:
        from .llm import ResponseCache, endpoint_from
        from .llmcards import CardWriter
        from .passages import read_sources
    except ImportError as e:
        raise AnkigenError(f"--llm needs the llm extra ({e.name} is not installed): "
                           "pip install 'ankigen[llm]'") from None
    endpoint = endpoint_from(base_url, model, timeout_s=timeout, budget_s=budget)
    if endpoint is None:
        raise AnkigenError("--llm needs an endpoint: pass --base-url (and --model) or set "
                           "OPENAI_BASE_URL (and ANKIGEN_MODEL)")
    from .build import cache_dir

    return CardWriter(endpoint, sources=read_sources(list(sources)),
                      cache=ResponseCache(cache_dir() / "cards-llm.sqlite"), read_cache=read_cache)


def _summary(r: BuildResult) -> None:
    marks = ", ".join(f"{n} {k}" for k, n in sorted(r.by_mark.items()))
    state = "wrote" if r.written else "up to date:"
    say(f"{state} {r.out}: {r.notes} notes from {r.files} files ({marks or 'no gaps'})")
    say(f"  {r.new} new, {r.changed} changed, {r.unchanged} unchanged; checks: {r.checks}")
    if r.model:
        say(f"  model: {r.model}")
    if r.orphans:
        say(f"  {len(r.orphans)} gap(s) no longer in the notes; Anki keeps their notes "
            "(imports never delete). Find them in Anki's browser with:")
        for o in r.orphans:
            say(f"    {o.search}    ({o.file}: {o.anchor})")


@main.command(help="Show what notes hold, with lines: parts, marks, code, and every card a "
              "build would make (one per gap). Folders are read as `build` reads them.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print the parsed document as JSON (a list of them for a folder).")
@click.option("--include-green", is_flag=True, help="Also list 🟢 assessments as gaps.")
@click.option("--checks", "show_checks", is_flag=True,
              help="Explain which runnable check each gap gets, and why.")
@friendly
def parse(paths: tuple[Path, ...], as_json: bool, include_green: bool,
          show_checks: bool) -> None:
    from .build import discover_vault
    from .parse import parse_file

    if len(paths) == 1 and not paths[0].is_dir():  # one file: shown by the name given
        docs = [parse_file(paths[0], include_green=include_green)]
    else:
        found = discover_vault(list(paths))
        for w in found.warnings:
            warn("ankigen", w)
        docs = [parse_file(full, rel, include_green=include_green) for full, rel in found.files]
    if as_json:
        data = []
        for doc in docs:
            one = doc.to_dict()
            if show_checks:
                one["checks"] = _check_matches(doc.gaps)
            data.append(one)
        click.echo(json_text(data[0] if len(docs) == 1 and len(paths) == 1
                             and not paths[0].is_dir() else data))
        return
    cards = sum(_show_doc(doc, include_green, show_checks) for doc in docs)
    if len(docs) > 1:
        say(f"{cards} card(s) from {len(docs)} files, as `ankigen build --no-checks` makes them")


def _show_doc(doc: Any, include_green: bool, show_checks: bool) -> int:
    """One parsed file as `parse` prints it; returns how many cards a build makes of it."""
    from .cards import wanted

    matches = _check_matches(doc.gaps) if show_checks else {}
    say(f"{doc.path}  {doc.kind}, {doc.line_count} lines, {doc.encoding}"
              + (f"; {', '.join(doc.repairs)}" if doc.repairs else ""))
    if doc.goal:
        say(f"goal: {doc.goal}")
    if doc.kind == "reference":  # headings and bullets in file order
        outline = [(s.line, f"{'#' * s.level} {s.title} (line {s.line})") for s in doc.sections]
        outline += [(b.line, f"  {'  ' * b.depth}- line {b.line}: "
                             + (b.text if len(b.text) <= 100 else b.text[:99] + "…"))
                    for b in doc.bullets]
        for _, text in sorted(outline, key=lambda row: row[0]):
            say(text)
    else:
        say("sections: " + ", ".join(f"{s.title} (line {s.line})" for s in doc.sections))
    for part in doc.parts:
        ch = f", chapter {part.chapter}" if part.chapter else ""
        say(f"part {part.index + 1} (lines {part.span.start}-{part.span.end}{ch}): "
                  f"{part.topic}")
        for a in part.assessments:
            say(f"  {a.mark.emoji} line {a.line} judges {a.judged.start}-{a.judged.end}: "
                      f"{a.feedback}")
    gaps = [g for g in doc.gaps if wanted(g, include_green)]
    for g in gaps:
        mark = g.mark.emoji if g.mark else "·"
        say(f"{mark} gap line {g.line} [{g.kind.value}]: {g.prompt}")
        if g.code:
            say(f"    code: {g.code}")
        say(f"    answer ({g.answer_source or 'none: unanswered'}): "
                  f"{(g.answer or '').splitlines()[0][:120] if g.answer else ''}")
        if show_checks:
            say(f"    check: {matches.get(g.anchor, 'no check matcher installed')}")
    for c in doc.code_blocks:
        kind = "fenced" if c.fenced else "unfenced"
        say(f"code lines {c.span.start}-{c.span.end} ({kind}, {c.lang or 'text'}), "
                  f"{len(c.claims)} claim(s)")
        for cl in c.claims:
            say(f"    claim line {cl.line}: {cl.expected}")
    ran = ("; with checks, each claim above that running contradicts and each block that "
           "does not run adds one" if doc.code_blocks else "")
    say(f"{doc.path}: {len(gaps)} card(s), one per gap above, as `ankigen build --no-checks` "
        f"makes them{ran}")
    for w in doc.warnings:
        warn("ankigen", w)
    return len(gaps)


def _check_matches(gaps: Any) -> dict[str, str]:
    from .checks import match_gap

    explained: dict[str, str] = {}
    for g in gaps:
        check, why = match_gap(g)
        explained[g.anchor] = f"{check.id}: {why}" if check else f"none ({why})"
    return explained


def _exit_table() -> str:
    from .checks.claims import EXIT_CODES

    return "\b\nExit codes:\n" + "\n".join(f"  {code}  {what}" for code, what in EXIT_CODES)


class _CheckCommand(click.Command):
    """`check`, whose epilog (the exit codes, kept in ankigen.checks.claims) is only made
    when its help is shown, so the other commands never import the checks."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog is None:
            self.epilog = _exit_table()
        super().format_epilog(ctx, formatter)


@main.command(cls=_CheckCommand, help="Run a note's code blocks in order, in the sandbox, and "
              "verify the claims in their comments.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the code runs.")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds each block may run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(OPT_OUT, "unsandboxed", is_flag=True, help=OPT_OUT_HELP)
@friendly
def check(files: tuple[Path, ...], device: str, timeout: float, as_json: bool,
          unsandboxed: bool) -> None:
    from .checks import open_runner, verify_document
    from .checks.claims import exit_code, summary_line
    from .checks.sandbox import summary
    from .parse import parse_file
    from .text import clean

    docs = [parse_file(f) for f in files]
    if unsandboxed:
        warn("ankigen", OPT_OUT_WARNING)
    with _starting():
        runner = open_runner(device=device, timeout_s=timeout, unsandboxed=unsandboxed)
    with runner:
        reports = [verify_document(d, runner) for d in docs]
    if as_json:
        click.echo(json_text([r.to_dict() for r in reports]))
    else:
        for r in reports:
            say(f"{r.path}  (torch {r.torch_version}, {r.device})")
            for b in r.blocks:
                say(f"  block lines {b.block.span.start}-{b.block.span.end}: {b.status}"
                    + (f" — {b.exception}" if b.exception and b.status != "ok" else ""))
                for c in b.claims:
                    extra = f" (it printed {_quoted(c.actual or '')})" \
                        if c.verdict == "contradicted" else ""
                    say(f"    line {c.claim.line}: {c.verdict}: {c.claim.expected}{extra}")
    click.echo(summary(runner.isolation), err=True)
    click.echo(clean(summary_line(reports)), err=True)
    sys.exit(exit_code(reports))


def _quoted(text: str) -> str:
    """A claim's actual output on one line, quoted as Python's repr quotes it; when it holds
    look-alike or invisible characters, those are written as \\u escapes and it says so."""
    from .text import has_lookalikes, reveal

    if not has_lookalikes(text):
        return repr(text)
    shown = reveal(text.replace("\\", "\\\\")).replace("\n", "\\n").replace("\t", "\\t")
    return f"'{shown}'; look-alike or invisible characters shown as \\u escapes"


@contextmanager
def _starting() -> Iterator[None]:
    """While a check server starts (seconds: it imports torch), say so on stderr: a spinner
    on a terminal, else one line once the start has taken more than a moment."""
    import threading

    line = "starting the check server…"
    err = _console("err")
    if err.is_terminal:
        with err.status(line):
            yield
        return
    timer = threading.Timer(0.5, lambda: click.echo(line, err=True))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@main.group("check-server", help="The warm check server kept between runs (ANKIGEN_KEEP_WARM).")
def check_server() -> None:
    pass


@check_server.command("status", help="List this user's warm check servers.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@friendly
def check_server_status(as_json: bool) -> None:
    from .checks.keeper import keepers

    found = keepers()
    if as_json:
        import json

        click.echo(json.dumps(found, indent=2))
        return
    import time

    out = _console("out")
    for k in found:
        if not k["answering"]:
            out.print(f"pid {k['pid']}: not answering (ankigen check-server stop kills it)")
            continue
        up = time.time() - k["started"]
        out.print(f"pid {k['pid']}: torch {k['torch_version']}, {k['device_label']}, "
                  f"{k['workers']} servers, {k['served']} checks served, up {up:.0f} s, "
                  f"stops {k['idle_s']:g} s after its last client")
    if not found:
        out.print("no warm check server is running")


@check_server.command("stop", help="Stop this user's warm check servers now.")
@friendly
def check_server_stop() -> None:
    from .checks.keeper import stop_keepers

    stopped = stop_keepers()
    _console("out").print(f"stopped {len(stopped)} warm check server{'s' if len(stopped) != 1 else ''}")


if __name__ == "__main__":
    run()
