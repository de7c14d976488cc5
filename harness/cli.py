"""``asrfair`` command line: thin commands over the library.

Results go to stdout (a table, or JSON with ``--json``); progress and logs go to stderr.
Exit codes: 0 ok · 1 regression (gate) or a finding that does not hold (verify) · 2 bad input or
config · 3 backend failures beyond ``max_failure_rate`` · 4 internal error (a bug) · 130
interrupted (transcripts so far are cached; rerun resumes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, get_origin

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_REGRESSION,
    HarnessError,
    InputError,
    Interrupted,
    format_validation_error,
)
from harness.redaction import RedactingFilter, redact
from harness.study.command import register as register_study

app = typer.Typer(
    name="asrfair",
    help="Speech-recognition fairness benchmark: WER per accent, dialect, device and noise slice.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a traceback must never print an API key
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors stay one line


def _handle_errors(command: F) -> F:
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
                _internal_error(exc)
            shown = str(exc.filename) if len(str(exc.filename)) <= 200 else str(exc.filename)[:200] + "..."
            err_console.print(f"[bold red]error:[/] {escape(redact(f'{shown}: {exc.strerror or exc}'))}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except Exception as exc:  # a bug, not a user error: own exit code, traceback only with -v
            _internal_error(exc)

    return wrapper  # type: ignore[return-value]


def _internal_error(exc: BaseException) -> NoReturn:
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


@app.command("run")
@_handle_errors
def run_command(
    config: Annotated[Path, typer.Argument(help="run config YAML")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="parent of the run directory (default: runs/)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print metrics.json to stdout instead of the table")] = False,
    executor: Annotated[
        str | None, typer.Option("--executor", help="local (default) or ray: overrides execute.executor")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster to join: auto or ray://host:10001")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Ray actors (execute.workers)")] = None,
) -> None:
    """Transcribe the dataset with the configured backend, score it per slice, write a run directory.

    A rerun reuses cached transcripts, so an interrupted run resumes where it stopped.
    """
    from harness.config import load_config
    from harness.pipeline import prepare, run

    overrides: dict[str, Any] = {"output": str(output)} if output else {}
    execute = {"executor": executor, "address": ray_address, "workers": workers}
    if any(value is not None for value in execute.values()):
        overrides["execute"] = {key: value for key, value in execute.items() if value is not None}
    prepared = prepare(load_config(config, overrides or None))
    stop = threading.Event()
    with _LiveProgress(prepared.normalizer, prepared.requests) as progress, _stop_after_batch(stop):
        outcome = run(prepared, on_batch=progress.update, stop=stop)
    _emit(outcome.metrics, as_json)
    err_console.print(
        f"run directory: {outcome.paths.root} ({outcome.transcribed} transcribed, {outcome.from_cache} from cache)"
    )
    outcome.raise_for_failures()


@app.command("audition")
@_handle_errors
def audition_command(
    config: Annotated[Path, typer.Argument(help="run config YAML with conditions")],
    condition: Annotated[str, typer.Option("--condition", "-c", help="condition name from the config")],
    utterance: Annotated[str, typer.Option("--id", help="utterance id from the manifest")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="WAV to write (default: <id>.<condition>.wav)")
    ] = None,
) -> None:
    """Write what the model hears: one utterance rendered under one condition, exactly as a run renders it."""
    import soundfile as sf

    from harness.config import load_config
    from harness.pipeline import audition
    from harness.store import write_atomic

    heard = audition(load_config(config), condition, utterance)
    target = output or Path(f"{utterance}.{condition}.wav".replace("/", "_").replace("\\", "_"))
    peak = float(abs(heard.samples).max()) if heard.samples.size else 0.0
    subtype = "FLOAT" if peak > 1.0 else "PCM_16"
    # the container by the target's suffix: the temporary file's name has none
    container = target.suffix.lstrip(".").upper() or "WAV"
    write_atomic(target, lambda tmp: sf.write(str(tmp), heard.samples, heard.sample_rate, subtype, format=container))
    typer.echo(
        f"wrote {target}: {heard.utterance.id} under {condition} ({heard.condition.describe()}), "
        f"{heard.samples.size / heard.sample_rate:.1f} s at {heard.sample_rate} Hz"
    )


@app.command("validate")
@_handle_errors
def validate_command(
    manifest: Annotated[Path, typer.Argument(help="manifest (.jsonl or .csv)")],
    no_audio: Annotated[bool, typer.Option("--no-audio", help="skip opening the audio files")] = False,
    audio_roots: Annotated[
        list[Path] | None,
        typer.Option("--audio-root", help="a folder outside the manifest's own that audio may come from (repeatable)"),
    ] = None,
) -> None:
    """Check a manifest: every problem reported with file and line. Exit 2 on errors."""
    from harness.errors import EXIT_BAD_INPUT
    from harness.manifest import read_manifest

    result = read_manifest(manifest, check_audio=not no_audio, audio_roots=audio_roots or ())
    for problem in result.problems:
        style = "red" if problem.level == "error" else "yellow"
        err_console.print(f"[{style}]{escape(str(problem))}[/]", soft_wrap=True, highlight=False)
    speakers = {u.speaker for u in result.utterances if u.speaker}
    typer.echo(
        f"{manifest}: {len(result.utterances)} utterances, {len(speakers)} speakers, "
        f"tags: {', '.join(result.tag_names) or 'none'}; "
        f"{len(result.errors)} errors, {len(result.warnings)} warnings"
    )
    if result.errors:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("import")
@_handle_errors
def import_command(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="corpus format; 'asrfair importers' lists them")],
    source: Annotated[Path, typer.Argument(help="the corpus folder, as released")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="manifest to write, e.g. datasets/NAME/manifest.jsonl")
    ],
    split: Annotated[str | None, typer.Option("--split", help="which split, where the format has them")] = None,
    tag_map: Annotated[
        Path | None, typer.Option("--map", help="YAML mapping raw tag values to canonical ones (docs/datasets.md)")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="write every rejected row here (default: <manifest>.rejects.jsonl if any)"),
    ] = None,
    options: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="importer option key=value (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Turn a released corpus into a manifest, streaming: counts per tag value, every rejected row kept."""
    from harness.importers import ImporterRegistry, parse_options
    from harness.importers.tagmap import read_tag_map
    from harness.importers.writer import import_corpus
    from harness.report.imports import print_import_summary

    mapping = read_tag_map(tag_map) if tag_map is not None else None
    importer = ImporterRegistry.default().create(fmt, source, parse_options(options or []), split)
    progress = Progress(
        TextColumn(f"importing {escape(fmt)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("import", total=importer.estimate())
        try:
            summary = import_corpus(
                importer, output, tag_map=mapping, rejects=rejects, progress=lambda n: progress.advance(task, n)
            )
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; {output} is as it was before the import (rerun the command)") from None
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        print_import_summary(summary, _stdout_console())
    if summary.card_kept:
        err_console.print(escape(f"kept {summary.card}, which was not written by an import"))
    root = f" --audio-root {summary.audio_outside}" if summary.audio_outside else ""
    err_console.print(escape(f"next: asrfair validate {output}{root}"), highlight=False)
    if summary.audio_outside:
        err_console.print(
            escape(
                f"the audio stays in {summary.audio_outside}: add 'audio_roots: [{summary.audio_outside}]' "
                "to run configs that use this manifest"
            ),
            highlight=False,
        )


@app.command("importers")
@_handle_errors
def importers_command(as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False) -> None:
    """List corpus formats 'asrfair import' reads (built-in and 'asrfair.importers' entry points)."""
    from harness.importers import ImporterRegistry

    registry = ImporterRegistry.default()
    listing = []
    for name in registry.names():
        try:
            cls = registry.load(name)
        except HarnessError as exc:  # one broken plugin does not hide the others
            listing.append(
                {"name": name, "description": str(exc), "splits": [], "free_split": "", "tags": {}, "options": {}}
            )
            continue
        listing.append(
            {
                "name": name,
                "description": cls.description,
                "splits": list(cls.splits),
                "free_split": cls.free_split,
                "tags": {tag: info.description for tag, info in cls.tags.items()},
                "options": {
                    key: {"default": f.get_default(call_default_factory=True), "description": f.description or ""}
                    for key, f in cls.Options.model_fields.items()
                },
            }
        )
    if as_json:
        typer.echo(json.dumps(listing, indent=2, default=str))
        return
    console = _stdout_console()
    for entry in listing:
        table = Table(title=escape(f"{entry['name']}: {entry['description']}"), title_justify="left")
        table.add_column("yields / option")
        table.add_column("description")
        if entry["splits"]:
            table.add_row("--split", escape(", ".join(entry["splits"]) + f" (default {entry['splits'][0]})"))
        elif entry["free_split"]:
            table.add_row("--split NAME", escape(entry["free_split"]))
        for tag, description in entry["tags"].items():
            table.add_row(escape(tag), escape(description))
        for key, option in entry["options"].items():
            table.add_row(escape(f"-O {key}={option['default']}"), escape(option["description"]))
        console.print(table)


@app.command("coverage")
@_handle_errors
def coverage_command(
    manifest: Annotated[Path, typer.Argument(help="manifest (.jsonl or .csv)")],
    slices: Annotated[
        Path | None, typer.Option("--slices", help="slice YAML: its intersections, groups and bins are counted too")
    ] = None,
    min_speakers: Annotated[int, typer.Option("--min-speakers", min=1, help="thin below this many speakers")] = 5,
    min_words: Annotated[int, typer.Option("--min-words", min=1, help="thin below this many reference words")] = 200,
    no_audio: Annotated[
        bool, typer.Option("--no-audio", help="do not read audio headers for utterances without 'duration'")
    ] = False,
    audio_roots: Annotated[
        list[Path] | None,
        typer.Option("--audio-root", help="a folder outside the manifest's own whose audio headers may be read"),
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--md", help="also write the tables as Markdown")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the coverage as JSON")] = False,
    max_pair_tags: Annotated[
        int, typer.Option("--max-pair-tags", min=0, help="no pair tables above this many tags")
    ] = 40,
) -> None:
    """Speakers, utterances, words and hours per tag value and per pair of tags; thin and empty cells.

    Needs no backend and decodes no audio: run it before recording more, or before trusting a
    "no significant gap".
    """
    from dataclasses import asdict

    from harness.coverage import coverage
    from harness.report.coverage import print_coverage, render_coverage_markdown
    from harness.slices import load_slices
    from harness.store import write_text

    result = coverage(
        manifest,
        slices=load_slices(slices) if slices else (),
        min_speakers=min_speakers,
        min_words=min_words,
        read_durations=not no_audio,
        audio_roots=audio_roots or (),
        max_pair_tags=max_pair_tags,
    )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if markdown is not None:
        write_text(markdown, render_coverage_markdown(result))
        err_console.print(f"wrote {markdown}")
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2, ensure_ascii=False))
    else:
        print_coverage(result, _stdout_console())


@app.command("score")
@_handle_errors
def score_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by 'asrfair run'")],
    slices: Annotated[Path | None, typer.Option("--slices", help="slice YAML (default: the run's own)")] = None,
    normalizer: Annotated[
        list[str] | None,
        typer.Option(
            "--normalizer",
            help="preset (asrfair normalizers), name@version or a normaliser YAML; repeat it to compare: the first "
            "is the headline, the others are scored beside it",
        ),
    ] = None,
    aggregate: Annotated[
        str | None,
        typer.Option("--aggregate", help="headline aggregate: pooled, speaker-mean or utterance-mean"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print metrics.json to stdout")] = False,
) -> None:
    """Re-score a finished run (new slices, normaliser or headline aggregate) without transcribing again."""
    from harness.pipeline import rescore
    from harness.slices import load_slices

    chosen = load_slices(slices) if slices else None
    metrics = rescore(run_dir, slices=chosen, normalizers=normalizer, aggregate=aggregate)
    _emit(metrics, as_json)
    err_console.print(f"rewrote {run_dir / 'metrics.json'} and {run_dir / 'report.md'}")


@app.command("normalizers")
@_handle_errors
def normalizers_command(
    text: Annotated[str | None, typer.Option("--text", help="show what each normaliser makes of this text")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False,
) -> None:
    """List the text normalisers (built-in presets and plugins), optionally applied to a sample text."""
    from harness.text import available_normalizers

    found = available_normalizers()
    rows = [
        {
            "normalizer": n.stamp,
            "description": n.description,
            "source": n.source,
            "library": n.library,
            **({"text": n(text)} if text is not None else {}),
        }
        for n in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title="Normalisers (docs/normalisation.md lists every rule)", title_justify="left")
    for column in ("normalizer", "output" if text is not None else "description", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row["normalizer"]),
            escape(row["text"] if text is not None else row["description"]),
            escape(row["source"]),
        )
    _stdout_console().print(table)


@app.command("report")
@_handle_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by 'asrfair run'")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file to write (default: RUN_DIR/report.html)")
    ] = None,
    compare: Annotated[
        Path | None, typer.Option("--compare", help="another run (or baseline .json) to show this one against")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="compare runs scored under different normalisers anyway (warns)")
    ] = False,
) -> None:
    """Write the self-contained HTML report of a run (charts, heatmaps, worst utterances, sortable tables)."""
    from harness.pipeline import report

    target = report(run_dir, out=output, compare=compare, force=force)
    err_console.print(f"wrote {target}")


@app.command("model")
@_handle_errors
def model_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by 'asrfair run'")],
    factors: Annotated[
        str | None, typer.Option("--factors", help="comma-separated tags (default: single-tag slices)")
    ] = None,
    slices: Annotated[
        Path | None, typer.Option("--slices", help="slice YAML for default factors and references")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the model as JSON")] = False,
) -> None:
    """Each tag's error-rate ratio controlled for the others (Poisson GEE, speaker clusters)."""
    from dataclasses import asdict

    from harness.pipeline import fit_model
    from harness.report.terminal import print_model
    from harness.slices import load_slices

    chosen = [f.strip() for f in factors.split(",") if f.strip()] if factors else None
    result = asdict(fit_model(run_dir, factors=chosen, slices=load_slices(slices) if slices else None))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_model(result, _stdout_console())


@app.command("plan")
@_handle_errors
def plan_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by 'asrfair run' (the pilot)")],
    gap: Annotated[float, typer.Option("--gap", help="the WER gap that matters (0.02 = 2 points)")],
    power: Annotated[float | None, typer.Option("--power", help="default: the run's stats.power (0.8)")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="default: 1 - the run's stats.confidence")] = None,
    utts_per_speaker: Annotated[
        float | None, typer.Option("--utts-per-speaker", help="utterances each speaker records (default: as now)")
    ] = None,
    slices: Annotated[Path | None, typer.Option("--slices", help="slice YAML (default: the run's own)")] = None,
    markdown: Annotated[Path | None, typer.Option("--md", help="also write the plan as Markdown")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    """How many speakers each slice needs before a gap of --gap would be detected (have / need / record more)."""
    from dataclasses import asdict

    from harness.pipeline import plan_run
    from harness.report.coverage import print_plan, render_plan_markdown
    from harness.slices import load_slices
    from harness.store import write_text

    result = plan_run(
        run_dir,
        gap=gap,
        power=power,
        alpha=alpha,
        utts_per_speaker=utts_per_speaker,
        slices=load_slices(slices) if slices else None,
    )
    if markdown is not None:
        write_text(markdown, render_plan_markdown(result))
        err_console.print(f"wrote {markdown}")
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
    else:
        print_plan(result, _stdout_console())


@app.command("discover")
@_handle_errors
def discover_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by 'asrfair run'")],
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for one finding file per result (default: RUN_DIR/findings)")
    ] = None,
    depth: Annotated[int, typer.Option("--depth", help="conjunctions of up to this many tags (1-4)")] = 3,
    fdr: Annotated[float, typer.Option("--fdr", help="false discovery rate of each half (Benjamini-Hochberg)")] = 0.05,
    min_speakers: Annotated[
        int | None, typer.Option("--min-speakers", help="per half (default: the run's stats.min_speakers)")
    ] = None,
    min_words: Annotated[int | None, typer.Option("--min-words", help="per half (default: stats.min_words)")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="speaker split and bootstrap (default: stats.seed)")
    ] = None,
    tags: Annotated[str | None, typer.Option("--tags", help="comma-separated tags to search (default: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print discovery.json instead of the table")] = False,
) -> None:
    """Search for under-served subgroups (intersections of tag values), confirmed on held-out speakers."""
    from harness.pipeline import discover_run
    from harness.report.terminal import print_discovery

    chosen = [t.strip() for t in tags.split(",") if t.strip()] if tags else None
    _, written = discover_run(
        run_dir, out=out, depth=depth, fdr=fdr, min_speakers=min_speakers, min_words=min_words, seed=seed, tags=chosen
    )
    if as_json:
        typer.echo((run_dir / "discovery.json").read_text(encoding="utf-8"))
    else:
        print_discovery(json.loads((run_dir / "discovery.json").read_text(encoding="utf-8")), _stdout_console())
    for path in written:
        err_console.print(f"finding written: {path}")
    err_console.print(f"wrote {run_dir / 'discovery.json'}; report.md and report.html list the findings")


@app.command("verify")
@_handle_errors
def verify_command(
    finding: Annotated[Path, typer.Argument(help="a finding file written by 'asrfair discover'")],
    run_dir: Annotated[Path | None, typer.Option("--run", help="evaluate on this finished run")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="run this config first (cached transcripts reused), then evaluate")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
) -> None:
    """Re-evaluate a finding on a run: exit 0 when it holds, 1 when it does not."""
    from dataclasses import asdict

    from harness.pipeline import verify_finding
    from harness.report.terminal import print_verdict

    verdict = verify_finding(finding, run_dir=run_dir, config=config)
    if as_json:
        typer.echo(json.dumps(asdict(verdict), indent=2))  # the verdict's numbers are JSON-safe already
    else:
        print_verdict(verdict, _stdout_console())
    if not verdict.holds:
        raise typer.Exit(EXIT_REGRESSION)


@app.command("serve")
@_handle_errors
def serve_command(
    backend: Annotated[
        Path, typer.Option("--backend", "-b", help="YAML with a 'backend:' section (a run config works)")
    ],
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port")] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="interface to bind; 0.0.0.0 exposes it to the network")
    ] = "127.0.0.1",
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="the 'model' clients must send (default: the backend's name)")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="require 'Authorization: Bearer $VAR' from clients")
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="largest upload; a larger one gets 413")
    ] = 25.0,
    request_timeout: Annotated[
        float,
        typer.Option("--request-timeout", min=0.001, help="seconds from upload to answer, queueing included; then 504"),
    ] = 120.0,
    max_audio_seconds: Annotated[
        float, typer.Option("--max-audio-seconds", min=0.001, help="longest audio decoded, checked before decoding")
    ] = 1800.0,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", min=0.001, help="seconds for a request's headers; then 408")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", min=0.001, help="seconds for a request's whole body; then 408")
    ] = 60.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="open connections; more get 503 and are closed")
    ] = 256,
) -> None:
    """Serve a configured backend over the OpenAI transcription protocol (POST /v1/audio/transcriptions)."""
    from harness.serve import Limits, bind, create_backend, read_backend_spec, serve, server_key

    key = server_key(api_key_env)
    limits = Limits(
        max_upload_mb=max_upload_mb,
        max_audio_s=max_audio_seconds,
        request_timeout=request_timeout,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
    )
    spec = read_backend_spec(backend)
    sock = bind(host, port)  # before the model loads: a bad or busy port is a one-line exit 2 at once
    try:
        engine = create_backend(backend, spec)
    except BaseException:
        sock.close()
        raise
    serve(engine, sock, model_name=model_name or engine.name, api_key=key, limits=limits)


@app.command("gate")
@_handle_errors
def gate_command(
    run_dir: Annotated[Path, typer.Argument(help="the candidate run directory")],
    baseline: Annotated[
        Path, typer.Option("--baseline", "-b", help="baseline .json (asrfair baseline set) or a run directory")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="where gate.md and gate.json go (default: the run directory)")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="also write JUnit XML, one test case per check")] = None,
    wer_increase: Annotated[float | None, typer.Option(help="override gate.wer_increase (0.01 = 1 pp)")] = None,
    slice_wer_increase: Annotated[float | None, typer.Option(help="override gate.slice_wer_increase")] = None,
    gap_increase: Annotated[float | None, typer.Option(help="override gate.gap_increase")] = None,
    confidence: Annotated[float | None, typer.Option(help="override gate.confidence (family-wise)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print gate.json instead of the table")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="gate runs scored under different normalisers anyway (warns)")
    ] = False,
) -> None:
    """Fail (exit 1) when the run is worse or less fair than the baseline, beyond noise."""
    from harness.config import GateConfig
    from harness.gate import load_side, run_gate
    from harness.report.gate import print_gate, render_markdown, write_junit
    from harness.store import write_json, write_text

    candidate = load_side(run_dir, "candidate")
    base = load_side(baseline, "baseline")
    overrides = {
        k: v
        for k, v in {
            "wer_increase": wer_increase,
            "slice_wer_increase": slice_wer_increase,
            "gap_increase": gap_increase,
            "confidence": confidence,
        }.items()
        if v is not None
    }
    try:
        thresholds = GateConfig.model_validate({**base.config.gate.model_dump(), **overrides})
    except ValidationError as exc:
        raise InputError(f"gate options: {format_validation_error(exc)}") from None
    result = run_gate(base, candidate, thresholds, force=force)
    folder = output or run_dir
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder}: not a folder; gate.md and gate.json are written into a folder")
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "gate.md", render_markdown(result))
    write_json(folder / "gate.json", result.to_json())
    if junit is not None:
        write_junit(result, junit)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print_gate(result, _stdout_console(), err_console)
        err_console.print(f"wrote {folder / 'gate.md'} and gate.json" + (f", {junit}" if junit else ""))
    if not result.passed:
        raise typer.Exit(EXIT_REGRESSION)


baseline_app = typer.Typer(help="Manage gate baselines.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("set")
@_handle_errors
def baseline_set_command(
    run_dir: Annotated[Path, typer.Argument(help="the run to accept as the baseline")],
    output: Annotated[Path, typer.Option("--output", "-o", help="baseline .json to write")],
) -> None:
    """Accept a run as the baseline: writes OUTPUT.json and its utterance table beside it."""
    from harness.gate import save_baseline

    path = save_baseline(run_dir, output)
    err_console.print(f"baseline written: {path} (+ {path.with_suffix('.utterances.parquet').name})")


@app.command("compare")
@_handle_errors
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="first run directory (or baseline .json)")],
    run_b: Annotated[Path, typer.Argument(help="second run directory (or baseline .json)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="compare runs scored under different normalisers anyway (warns)")
    ] = False,
) -> None:
    """Two runs side by side, paired on shared utterances: WER per slice and the change, with intervals."""
    from harness.gate import compare_sides
    from harness.report.gate import print_comparison

    comparison = compare_sides(run_a, run_b, force=force)
    if as_json:
        typer.echo(json.dumps(comparison, indent=2, default=str))
    else:
        print_comparison(comparison, _stdout_console())


@app.command("history")
@_handle_errors
def history_command(
    db: Annotated[Path, typer.Option("--db", help="run-history database")] = Path("runs/history.duckdb"),
    slice_filter: Annotated[
        list[str] | None, typer.Option("--slice", help="only this slice, e.g. accent=scottish (repeatable)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="only runs of this run name (config 'name')")] = None,
    last: Annotated[int, typer.Option("--last", help="the most recent N runs")] = 30,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG of WER per slice over time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable rows")] = False,
) -> None:
    """Trend of overall and per-slice WER over the runs recorded in the history database."""
    from harness.history import show_history

    show_history(
        db, slices=slice_filter or [], name=name, last=last, plot=plot, as_json=as_json, console=_stdout_console()
    )


@app.command("backends")
@_handle_errors
def backends_command(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False,
) -> None:
    """List registered backends (built-in and from the 'asrfair.backends' entry points) and their options."""
    from harness.backends.base import Registry

    registry = Registry.default()
    listing = []
    for name in registry.names():
        try:
            cls = registry.load(name)
        except HarnessError as exc:
            listing.append({"name": name, "error": str(exc), "options": {}})
            continue
        options = {
            key: {
                "type": _type_name(f.annotation),
                "default": None if f.is_required() else f.get_default(call_default_factory=True),
                "description": f.description or "",
            }
            for key, f in cls.Options.model_fields.items()
        }
        listing.append({"name": name, "description": cls.description, "options": options})
    if as_json:
        typer.echo(json.dumps(listing, indent=2, default=str))
        return
    console = Console()
    for entry in listing:
        table = Table(
            title=f"{entry['name']}: {entry.get('description') or entry.get('error', '')}", title_justify="left"
        )
        for column in ("option", "type", "default", "description"):
            table.add_column(column)
        for key, opt in entry["options"].items():
            table.add_row(
                key, escape(opt["type"]), escape(json.dumps(opt["default"], default=str)), escape(opt["description"])
            )
        console.print(table)


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is None and hasattr(annotation, "__name__"):
        return annotation.__name__  # plain classes: "int", not "<class 'int'>"
    return str(annotation).replace("typing.", "")  # Literal['cpu', 'cuda', 'auto'], dict[str, float]


def _emit(metrics: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
    else:
        from harness.report.terminal import print_summary

        print_summary(metrics, _stdout_console())


def _stdout_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)  # piped: do not squeeze tables into 80 columns


class _LiveProgress:
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

    def __enter__(self) -> _LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, batch: Sequence[Any], transcripts: Sequence[Any]) -> None:
        from harness.align import align

        ok = [(u.text, t.text) for u, t in zip(batch, transcripts, strict=True) if t.status == "ok"]
        self._failed += len(batch) - len(ok)
        if ok and not self._progress.disable:  # the running WER costs a second scoring: only when shown
            counts = align([self._normalizer(r) for r, _ in ok], [self._normalizer(h) for _, h in ok])
            self._errors += int(counts.errors.sum())
            self._words += int(counts.ref_words.sum())
        wer = f"WER {self._errors / self._words:.1%}" if self._words else ""
        self._progress.update(self._task, advance=len(batch), status=f"{wer} failed {self._failed}")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_after_batch(stop: threading.Event) -> Iterator[None]:
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


register_study(app)  # issue 27: asrfair study (harness/study/command.py)


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _stop)  # a CI job's timeout stops a run as Ctrl-C does: exit 130, resumable
    app(args=list(argv) if argv is not None else sys.argv[1:], prog_name="asrfair")
