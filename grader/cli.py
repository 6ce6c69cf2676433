"""`grader`: thin click commands over the grader library.

Like `ankigen.cli`, it imports click and nothing heavy: each command imports the grader,
rich and the file helpers when it runs, so `grader --version` and `--help` start at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ankigen.cli import OPT_OUT, OPT_OUT_HELP, OPT_OUT_WARNING, friendly_for, json_text, warn

from . import __version__
from .context import DEFAULT_CONTEXT_TOKENS

if TYPE_CHECKING:
    from .grade import GradeOptions

F = TypeVar("F", bound=Callable[..., Any])
friendly = friendly_for("grader")


@click.group(help="Mark a written recall session against its source material.")
@click.version_option(__version__, prog_name="grader")
def main() -> None:
    pass


def endpoint_options(fn: F) -> F:
    """The model endpoint: flag > environment (OPENAI_BASE_URL, ANKIGEN_MODEL, OPENAI_API_KEY)."""
    for option in reversed([
        click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                     "[env: OPENAI_BASE_URL]. Without one, grading is offline."),
        click.option("--model", help="Model name at that endpoint [env: ANKIGEN_MODEL]."),
        click.option("--offline", is_flag=True, help="Grade offline even if an endpoint is set."),
        click.option("--timeout", type=float, default=None,
                     help="Seconds one model request may take [default: 60]."),
        click.option("--budget", type=float, default=None,
                     help="Seconds all model requests of a session may take, retries "
                     "included [default: 300]."),
        click.option("--no-cache", is_flag=True, help="Ask the model again even for an "
                     "unchanged session."),
        click.option("--context-tokens", type=click.IntRange(min=1000),
                     default=DEFAULT_CONTEXT_TOKENS,
                     show_default=True, help="The judge's whole request, estimated in tokens: "
                     "sources that fit are shown whole, longer ones by retrieved passages."),
        click.option("--code/--no-code", "run_code", default=True, show_default=True,
                     help="Run recalled code in the sandboxed check runner."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True, help="Where recalled code runs."),
        click.option("--offline-green/--no-offline-green", default=False, show_default=True,
                     help="Offline, give 🟢 to a part when one source passage states each of "
                     "its statements in much the same words (wording alone: a swapped "
                     "term can pass)."),
    ]):
        fn = option(fn)
    return fn


def options_from(base_url: str | None, model: str | None, offline: bool, timeout: float | None,
                 budget: float | None, no_cache: bool, context_tokens: int, run_code: bool,
                 device: str, offline_green: bool) -> GradeOptions:
    from ankigen.llm import endpoint_from

    from .grade import GradeOptions

    endpoint = None if offline else endpoint_from(base_url, model, timeout_s=timeout,
                                                  budget_s=budget)
    return GradeOptions(endpoint=endpoint, run_code=run_code, device=device,
                        use_cache=not no_cache, context_tokens=context_tokens,
                        offline_green=offline_green)


@main.command("grade", help="Grade a recall session against its sources; write graded notes "
              "in the 🟢/🟡/🔴 format that `ankigen build` turns into cards.")
@click.argument("recall", type=click.Path(path_type=Path))
@click.option("-s", "--source", "sources", multiple=True, required=True,
              type=click.Path(path_type=Path),
              help="Source material: a .md or .txt file, or a folder of them (repeatable).")
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Write the graded session here (atomically).")
@click.option("--report", type=click.Path(path_type=Path),
              help="Write the full report (claims, verdicts, passages, code) as JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
@click.option(OPT_OUT, "unsandboxed", is_flag=True, help=OPT_OUT_HELP)
@endpoint_options
@friendly
def grade_cmd(recall: Path, sources: tuple[Path, ...], out: Path | None, report: Path | None,
              as_json: bool, unsandboxed: bool, **endpoint: Any) -> None:
    from ankigen.identity import atomic_write

    from .grade import OFFLINE_NOTES, grade, offline_note

    options = replace(options_from(**endpoint), unsandboxed=unsandboxed)
    if options.endpoint is None:
        click.echo(f"grader: {offline_note(options)}", err=True)
    if unsandboxed and options.run_code:
        warn("grader", OPT_OUT_WARNING)
    result = grade(recall, list(sources), options)
    data = json_text(result.to_dict())
    if report is not None:
        atomic_write(report, (data + "\n").encode("utf-8"))
    if out is not None:
        atomic_write(out, result.graded_markdown.encode("utf-8"))
    for w in result.warnings:
        if w not in OFFLINE_NOTES:
            warn("grader", w)
    if as_json:
        click.echo(data)
        return
    from rich.console import Console

    from .report import show

    show(result, Console(highlight=False, soft_wrap=True))
    if out is not None:
        click.echo(f"wrote {out}: `ankigen build {out}` makes its cards", err=True)


@main.command("eval", help="Grade labelled sessions with their marks taken out and measure "
              "agreement with the tutor: confusion matrix, Cohen's κ, false-accept rate, "
              "omission recall.")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@endpoint_options
@friendly
def eval_cmd(folder: Path, as_json: bool, **endpoint: Any) -> None:
    from rich.console import Console
    from rich.progress import Progress

    from .evaluate import evaluate
    from .grade import offline_note
    from .report import show_eval

    err = Console(stderr=True, highlight=False)

    options = options_from(**endpoint)
    if options.endpoint is None:
        click.echo(f"grader: {offline_note(options)}", err=True)
    with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("grading sessions", total=None)
        result = evaluate(folder, options,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        click.echo(json_text(result.to_dict()))
        return
    show_eval(result, Console(highlight=False, soft_wrap=True))


def _service_commands() -> None:
    """`grader serve` and `grader user`: the service's commands (the `service` extra)."""
    from .service.cli import serve_cmd, user_group, worker_cmd

    main.add_command(serve_cmd)
    main.add_command(worker_cmd)
    main.add_command(user_group)


_service_commands()


if __name__ == "__main__":
    main()
