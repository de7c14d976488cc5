"""The CLI's shared pieces: the typer app, one-line errors with documented exit codes, progress, signals."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import wraps
from typing import Annotated, Any, NoReturn, TypeVar, get_origin

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    HarnessError,
    Interrupted,
)
from harness.redaction import RedactingFilter, redact

app = typer.Typer(
    name="asrfair",
    help="Speech-recognition fairness benchmark: WER per accent, dialect, device and noise slice.",
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


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging on stderr")] = False) -> None:
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    handler.addFilter(RedactingFilter())  # debug logs of HTTP libraries and tracebacks may hold credentials
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s", handlers=[handler], force=True
    )


def type_name(annotation: Any) -> str:
    if get_origin(annotation) is None and hasattr(annotation, "__name__"):
        return annotation.__name__  # plain classes: "int", not "<class 'int'>"
    return str(annotation).replace("typing.", "")  # Literal['cpu', 'cuda', 'auto'], dict[str, float]


def emit(metrics: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
    else:
        from harness.report.terminal import print_summary

        print_summary(metrics, stdout_console())


def stdout_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)  # piped: do not squeeze tables into 80 columns


class LiveProgress:
    """Progress bar with ETA and the pooled WER of what is done so far (on stderr)."""

    def __init__(self, normalizer: Any, total: int) -> None:
        self._normalizer = normalizer
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
