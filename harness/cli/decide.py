"""Commands that decide and track: gate, baseline, compare, history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from harness.cli.common import app, err_console, handle_errors, stdout_console
from harness.errors import (
    EXIT_REGRESSION,
    InputError,
    format_validation_error,
)


@app.command("gate")
@handle_errors
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
    from harness.decide.gate import load_side, run_gate
    from harness.report.gate import print_gate, write_gate

    if not baseline.exists():  # a project's first gate: no run accepted yet
        raise InputError(f"--baseline {baseline}: no baseline yet; make one: asrfair baseline set RUN -o {baseline}")
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
        raise InputError(f"gate options: {format_validation_error(exc, model=GateConfig)}") from None
    result = run_gate(base, candidate, thresholds, force=force)
    folder = output or run_dir
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder}: not a folder; gate.md and gate.json are written into a folder")
    write_gate(result, folder, junit)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print_gate(result, stdout_console(), err_console)
        err_console.print(f"wrote {folder / 'gate.md'} and gate.json" + (f", {junit}" if junit else ""))
    if not result.passed:
        raise typer.Exit(EXIT_REGRESSION)


baseline_app = typer.Typer(help="Manage gate baselines.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("set")
@handle_errors
def baseline_set_command(
    run_dir: Annotated[Path, typer.Argument(help="the run to accept as the baseline")],
    output: Annotated[Path, typer.Option("--output", "-o", help="baseline .json to write")],
) -> None:
    """Accept a run as the baseline: writes OUTPUT.json and its utterance table beside it."""
    from harness.decide.gate import save_baseline

    path = save_baseline(run_dir, output)
    err_console.print(f"baseline written: {path} (+ {path.with_suffix('.utterances.parquet').name})")


@app.command("compare")
@handle_errors
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="first run directory (or baseline .json)")],
    run_b: Annotated[Path, typer.Argument(help="second run directory (or baseline .json)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="compare runs scored under different normalisers anyway (warns)")
    ] = False,
) -> None:
    """Two runs side by side, paired on shared utterances: WER per slice and the change, with intervals."""
    from harness.decide.gate import compare_sides
    from harness.report.gate import print_comparison

    comparison = compare_sides(run_a, run_b, force=force)
    if as_json:
        typer.echo(json.dumps(comparison, indent=2, default=str))
    else:
        print_comparison(comparison, stdout_console())


@app.command("history")
@handle_errors
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
    from harness.report.history import show_history

    show_history(
        db, slices=slice_filter or [], name=name, last=last, plot=plot, as_json=as_json, console=stdout_console()
    )
