"""``asrfair study STUDY.yaml``: every system over every dataset, ranked and compared (docs/study.md)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import app, err_console, handle_errors, stdout_console, stop_after_batch
from harness.study import RankBy


@app.command("study")
@handle_errors
def study_command(
    study: Annotated[Path, typer.Argument(help="study YAML: systems, datasets, shared stats")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="parent of the study directory (default: its output:)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print study.json instead of the tables")] = False,
    rank_by: Annotated[
        RankBy | None, typer.Option("--rank-by", help="wer | worst | gap (default: the study's rank_by)")
    ] = None,
) -> None:
    """Run several systems over the same datasets; leaderboards, paired comparisons, fairness claims.

    Each system × dataset is an ordinary run sharing the transcript cache: a rerun transcribes only what is new.
    """
    from harness.errors import TooManyFailures
    from harness.files import new_run_dir, write_json, write_text
    from harness.report.study_html import render_study_html
    from harness.report.study_md import render_study_markdown
    from harness.study.analyse import analyse
    from harness.study.results import to_json
    from harness.study.runner import run_study
    from harness.study.spec import load_study

    spec = load_study(study)
    if output is not None:
        spec = spec.model_copy(update={"output": output})
    root = new_run_dir(spec.output, spec.name).root

    def announce(system: str, dataset: str, requests: int) -> None:
        err_console.print(f"{system} on {dataset}: {requests} utterances")

    stop = threading.Event()
    with stop_after_batch(stop):
        runs = run_study(spec, root, source=study, announce=announce, stop=stop)
    result = analyse(spec, runs, rank_by)
    data = to_json(result)
    write_text(root / "study.md", render_study_markdown(result))
    write_text(root / "study.html", render_study_html(result))
    write_json(root / "study.json", data)
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        stdout_console().print(render_study_markdown(result), markup=False, highlight=False)
    err_console.print(
        f"study directory: {root} ({runs.transcribed} transcribed, {runs.from_cache} from cache)"
    )
    failed = [r for r in runs.runs if r.failure]
    if failed:
        raise TooManyFailures("; ".join(f"{r.system} on {r.dataset}: {r.failure}" for r in failed))
