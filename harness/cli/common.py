"""The CLI's shared pieces: the typer app, one-line errors with documented exit codes, progress, signals."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar, Union, get_args, get_origin

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    HarnessError,
    Interrupted,
)
from harness.redaction import RedactingFilter, redact


class _WordArgument(TyperArgument):
    """An argument whose help shows its type as a word (``PATH``), not typer's ``<path>``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return cli_word(self.type_descriptor.annotation)

    def _usage_display_name(self) -> str:  # typer writes a required one as {CONFIG}
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 else f"{name}..."


class _Worded:
    """Help shows every value as a word (``PATH``, ``INTEGER``, ``TEXT (repeatable)``) and a flag as
    nothing, where typer prints ``<path>``, ``<list[str]>`` and ``<bool>``."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            reword(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        return reword(option) if option is not None else None


class WordsCommand(_Worded, TyperCommand):
    pass


class WordsGroup(_Worded, TyperGroup):
    pass


def reword(param: Any) -> Any:
    if isinstance(param, TyperOption) and param.metavar is None:
        param.metavar = "" if param.is_flag else cli_word(param.type_descriptor.annotation)
    elif type(param) is TyperArgument:
        param.__class__ = _WordArgument  # adds no state: only how its type is shown
        param.metavar = param.metavar or param.name.upper()  # usage: asrfair run CONFIG
    return param


def cli_word(annotation: Any) -> str:
    """A CLI value's type as a word: ``PATH``, ``NUMBER``, ``PATH (repeatable)``."""
    if get_origin(annotation) is list:
        return f"{cli_word(get_args(annotation)[0])} (repeatable)"
    return type_name(annotation) if get_origin(annotation) is Literal else type_name(annotation).upper()


app = typer.Typer(
    name="asrfair",
    cls=WordsGroup,
    help="Speech-recognition fairness benchmark: WER per accent, dialect, device and noise slice.",
    epilog="New here? Run the 'Start here' commands in order: import (or write a manifest), validate, "
    "run, report; then 'asrfair gate' in CI. README.md walks through it with your model and your data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a traceback must never print an API key
    add_completion=False,
)


F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors stay one line


def handle_errors(command: F) -> F:
    """User errors become one line on stderr and a documented exit code, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as exc:  # says where the results are; not an error of the user's
            err_console.print(escape(str(exc)))
            raise typer.Exit(exc.exit_code) from None
        except HarnessError as exc:  # a plugin's message may quote its key
            err_console.print(f"[bold red]error:[/] {escape(redact(str(exc)))}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; rerun the same command (a run resumes from its transcript cache)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except OSError as exc:  # a path the system refuses (name too long, no permission): the user's to fix
            if exc.filename is None:
                internal_error(exc)
            shown = str(exc.filename) if len(str(exc.filename)) <= 200 else str(exc.filename)[:200] + "..."
            err_console.print(f"[bold red]error:[/] {escape(redact(f'{shown}: {exc.strerror or exc}'))}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except Exception as exc:  # a bug, not a user error: own exit code, traceback only with -v
            internal_error(exc)

    return wrapper  # type: ignore[return-value]


def internal_error(exc: BaseException) -> NoReturn:
    logging.getLogger("harness").debug("internal error", exc_info=True)
    err_console.print(
        f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(redact(str(exc)))} "
        "(rerun with -v for the traceback; please report it)"
    )
    raise typer.Exit(EXIT_INTERNAL) from None


def _print_version(value: bool) -> None:
    if value:
        from harness import __version__

        typer.echo(f"asrfair {__version__}")
        raise typer.Exit()


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging on stderr")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    handler.addFilter(RedactingFilter())  # debug logs of HTTP libraries and tracebacks may hold credentials
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s", handlers=[handler], force=True
    )


_TYPE_WORDS = {bool: "yes/no", int: "integer", float: "number", str: "text", Path: "path", type(None): "none"}


def type_name(annotation: Any) -> str:
    """A type as words a user reads: ``number or none``, ``cpu | cuda | auto``, ``list of text``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    if origin is Annotated:
        return type_name(args[0])
    if annotation is Any:
        return "any value"
    if origin is Literal:
        return " | ".join(str(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin in (list, tuple, set, frozenset) and args:
        return f"list of {type_name(args[0])}"
    if origin is dict and len(args) == 2:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))  # a model: StubRule


def emit(metrics: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
    else:
        from harness.report.terminal import print_summary
        from harness.results import RunResult

        print_summary(RunResult.from_dict(metrics), stdout_console())


def stdout_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)  # piped: do not squeeze tables into 80 columns


class LiveProgress:
    """Progress bar with ETA and the pooled WER of what is done so far (on stderr); without a
    terminal, the same as plain lines every 10 % or 30 s (:mod:`harness.cli.progress`)."""

    def __init__(self, normalizer: Any, total: int) -> None:
        from harness.cli.progress import ProgressLines

        self._normalizer = normalizer
        self._lines = None
        if not err_console.is_terminal:
            self._lines = ProgressLines(total, normalizer, lambda line: err_console.print(line, highlight=False))
        self._errors = self._words = self._failed = 0
        self._progress = Progress(
            TextColumn("transcribing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=err_console,
            transient=False,
            disable=not err_console.is_terminal,
        )
        self._task = self._progress.add_task("run", total=total, status="")

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, batch: Sequence[Any], transcripts: Sequence[Any]) -> None:
        from harness.scoring.align import align

        if self._lines is not None:
            self._lines.update(batch, transcripts)
            return

        ok = [(u.text, t.text) for u, t in zip(batch, transcripts, strict=True) if t.status == "ok"]
        self._failed += len(batch) - len(ok)
        if ok and not self._progress.disable:  # the running WER costs a second scoring: only when shown
            counts = align([self._normalizer(r) for r, _ in ok], [self._normalizer(h) for _, h in ok])
            self._errors += int(counts.errors.sum())
            self._words += int(counts.ref_words.sum())
        wer = f"WER {self._errors / self._words:.1%}" if self._words else ""
        self._progress.update(self._task, advance=len(batch), status=f"{wer} failed {self._failed}")


def stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_after_batch(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM lets the batch in flight finish and be cached (paid API calls are
    not thrown away), then the run stops; a second one stops it at once."""

    def request(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        # straight to the descriptor: printing through a stream the handler interrupted can fail as re-entrant
        os.write(2, b"\nstopping after the batch in flight (its transcripts are kept); again to stop now\n")

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
