"""Commands that look deeper into a run: model, plan, discover, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import app, err_console, handle_errors, stdout_console
from harness.errors import (
    EXIT_REGRESSION,
)


@app.command("model")
@handle_errors
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
    from harness.stats.slices import load_slices

    chosen = [f.strip() for f in factors.split(",") if f.strip()] if factors else None
    result = fit_model(run_dir, factors=chosen, slices=load_slices(slices) if slices else None)
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
    else:
        print_model(result, stdout_console())


@app.command("plan")
@handle_errors
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

    from harness.files import write_text
    from harness.pipeline import plan_run
    from harness.report.coverage import print_plan, render_plan_markdown
    from harness.stats.slices import load_slices

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
        print_plan(result, stdout_console())


@app.command("discover")
@handle_errors
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
        print_discovery(json.loads((run_dir / "discovery.json").read_text(encoding="utf-8")), stdout_console())
    for path in written:
        err_console.print(f"finding written: {path}")
    err_console.print(f"wrote {run_dir / 'discovery.json'}; report.md and report.html list the findings")


@app.command("verify")
@handle_errors
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
        print_verdict(verdict, stdout_console())
    if not verdict.holds:
        raise typer.Exit(EXIT_REGRESSION)
