"""Commands that make or re-read a run: run, audition, score, report."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.common import LiveProgress, app, emit, err_console, handle_errors, stop_after_batch


@app.command("run")
@handle_errors
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
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="transcript cache file (default: the config's cache:, else runs/.cache/)"),
    ] = None,
) -> None:
    """Transcribe the dataset with the configured backend, score it per slice, write a run directory.

    A rerun reuses cached transcripts, so an interrupted run resumes where it stopped. The default
    cache lies in the output folder, so --output starts a new one (said before any work; --cache
    points at another).
    """
    from harness.config import load_config
    from harness.pipeline import prepare, run

    overrides: dict[str, Any] = {"output": str(output)} if output else {}
    if cache is not None:
        overrides["cache"] = str(cache)
    execute = {"executor": executor, "address": ray_address, "workers": workers}
    if any(value is not None for value in execute.values()):
        overrides["execute"] = {key: value for key, value in execute.items() if value is not None}
    prepared = prepare(load_config(config, overrides or None))
    if output is not None and cache is None:
        _say_if_cache_moved(prepared.config.cache_path, load_config(config).cache_path)
    stop = threading.Event()
    with LiveProgress(prepared.normalizer, prepared.requests) as progress, stop_after_batch(stop):
        outcome = run(prepared, on_batch=progress.update, stop=stop)
    emit(outcome.metrics, as_json)
    err_console.print(f"transcript cache: {prepared.config.cache_path} (--cache or cache: to use another)")
    err_console.print(
        f"run directory: {outcome.paths.root} ({outcome.transcribed} transcribed, {outcome.from_cache} from cache)"
    )
    outcome.raise_for_failures()


@app.command("audition")
@handle_errors
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
    from harness.files import write_atomic
    from harness.pipeline import audition

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


@app.command("score")
@handle_errors
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
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="new run directory to write (default: RUN_DIR-rescored-<UTC> beside it)"),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="rewrite RUN_DIR itself (its reports and its history row)")
    ] = False,
) -> None:
    """Re-score a finished run (new slices, normaliser or headline aggregate) without transcribing again.

    Writes a new run directory and leaves RUN_DIR and its history row as they were, unless --in-place.
    """
    from harness.errors import InputError
    from harness.pipeline import copy_for_rescore, rescore
    from harness.stats.slices import load_slices

    if in_place and output is not None:
        raise InputError("--in-place and --output: choose one (--in-place rewrites RUN_DIR, --output writes anew)")
    chosen = load_slices(slices) if slices else None
    target = run_dir if in_place else copy_for_rescore(run_dir, output)
    metrics = rescore(target, slices=chosen, normalizers=normalizer, aggregate=aggregate)
    emit(metrics, as_json)
    if in_place:
        err_console.print(f"rescored {run_dir} in place (its reports, metrics.json and history row)")
    else:
        err_console.print(f"run directory: {target} (rescored from {run_dir}, which is unchanged)")


@app.command("report")
@handle_errors
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


def _say_if_cache_moved(used: Path, configured: Path) -> None:
    """--output moved the default cache: say so before any transcribing when the config's own cache
    exists and the moved one does not, with the flag that reuses it."""
    if used != configured and configured.is_file() and not used.exists():
        err_console.print(
            f"transcript cache {used} is new (--output moves the default cache with the run directories); "
            f"{configured} already holds transcripts: stop and add --cache {configured} to reuse them",
            highlight=False,
        )
