"""``asrfair history``: the trend table, its JSON rows and the PNG plot of runs recorded in the history database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.decide.history import LOCK_WAIT_S, load_history, parse_slices, trend_frame
from harness.errors import InputError
from harness.files import write_atomic
from harness.report.format import pct_ci

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def show_history(
    db_path: Path,
    *,
    slices: list[str],
    name: str | None,
    last: int,
    plot: Path | None,
    as_json: bool,
    console: Console,
    lock_wait_s: float = LOCK_WAIT_S,
) -> None:
    """Print the trend table (or JSON rows); with ``plot``, write a PNG of WER per slice over time."""
    history = load_history(db_path, name=name, last=last, lock_wait_s=lock_wait_s)
    wanted = parse_slices(slices, history.slices, len(history.runs))
    trend = trend_frame(history, wanted)
    drawn: list[str] = []
    if plot is not None:
        title = f"WER over time: {name or 'all runs'} ({db_path.name})"
        drawn = plot_trend(trend, plot, title=title, band=f"{_level(history.runs)} confidence interval")
    if as_json:
        console.out(json.dumps(json_rows(history.runs, trend), indent=2), highlight=False)
        return
    console.print(history_table(history.runs, trend, db_path))
    scorings = sorted(history.runs["normalizer"].dropna().unique())
    if len(scorings) > 1:
        listed = escape(", ".join(scorings))
        console.print(
            f"[yellow]warning:[/] these runs were scored under {len(scorings)} normalisers ({listed}); "
            "their WERs differ by the scoring rules too: filter with --name, or re-score with 'asrfair score "
            "--normalizer'"
        )
    if plot is not None:
        lines = f"{len(drawn)} line{'s' if len(drawn) != 1 else ''}: one per slice and backend fingerprint"
        console.print(f"plot written: {escape(str(plot))} ({lines})")


def history_table(runs: pd.DataFrame, trend: pd.DataFrame, db_path: Path) -> Table:
    series = list(dict.fromkeys(trend["series"]))
    cells = trend.assign(cell=[pct_ci(w, [lo, hi]) for w, lo, hi in _wer_triples(trend)])
    wide = cells.pivot(index="run_id", columns="series", values="cell").reindex(index=runs["run_id"], columns=series)
    count = f"{len(runs)} run" + ("s" if len(runs) != 1 else "")
    title = f"WER [{_level(runs)} CI] per run, oldest first: {count} from {escape(str(db_path))}"
    table = Table(title=title, title_justify="left")
    table.add_column("started (UTC)")
    table.add_column("run")
    table.add_column("backend")
    table.add_column("normaliser")
    for key in series:
        table.add_column(escape(key), justify="right")
    table.add_column("failed", justify="right")
    for run, row in zip(runs.itertuples(index=False), wide.itertuples(index=False), strict=True):
        started = "–" if pd.isna(run.started_utc) else f"{run.started_utc:%Y-%m-%d %H:%M:%S}"
        backend = f"{run.backend} {str(run.backend_id or '')[:8]}".strip()
        values = ["–" if pd.isna(cell) else cell for cell in row]
        failed = "–" if pd.isna(run.failures) else str(run.failures)
        normalizer = "–" if pd.isna(run.normalizer) else str(run.normalizer)
        table.add_row(started, escape(str(run.run_name)), escape(backend), escape(normalizer), *values, failed)
    return table


def _wer_triples(trend: pd.DataFrame) -> list[tuple[float | None, float | None, float | None]]:
    """(wer, low, high) with missing values as None, as the report formatters expect."""
    values = trend[["wer", "wer_ci_low", "wer_ci_high"]].astype(object)
    return list(values.where(values.notna(), None).itertuples(index=False, name=None))


def json_rows(runs: pd.DataFrame, trend: pd.DataFrame) -> list[dict[str, Any]]:
    """Each run's columns, plus ``slices``: the requested slices' WER, interval and counts."""
    rows = _records(runs)
    picked = trend[trend["series"] != "overall"].drop(columns=["started_utc", "backend", "backend_id"])
    by_run: dict[str, dict[str, Any]] = {row["run_id"]: {} for row in rows}
    for entry in _records(picked):
        by_run[entry.pop("run_id")][entry.pop("series")] = entry
    return [{**row, "slices": by_run[row["run_id"]]} for row in rows]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: missing values null, timestamps ISO 8601 UTC, floats exact."""
    out = frame.copy()
    for column in out.select_dtypes("datetime").columns:
        out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = out.astype(object)
    return out.where(out.notna(), None).to_dict("records")


def _level(runs: pd.DataFrame) -> str:
    """The runs' interval level, e.g. "95%"; "mixed" when the runs shown differ."""
    levels = runs["confidence"].dropna().unique()
    if len(levels) == 1:
        return f"{levels[0]:.0%}"
    return "mixed" if len(levels) else "?"


def trend_lines(trend: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, points) per line of the plot: one per requested slice (overall when none) and backend
    fingerprint, so runs of different models or settings are never joined into one line. The
    fingerprint is named in the label only when the runs shown have more than one."""
    shown = trend if (trend["series"] == "overall").all() else trend[trend["series"] != "overall"]
    pairs = zip(shown["backend"], shown["backend_id"], strict=True)
    shown = shown.assign(fingerprint=[_fingerprint(name, backend_id) for name, backend_id in pairs])
    several = shown["fingerprint"].nunique() > 1
    lines = []
    for (series, fingerprint), group in shown.groupby(["series", "fingerprint"], sort=False):
        label = f"{series} · {fingerprint}" if several else str(series)
        lines.append((label, group.sort_values("started_utc")))
    return lines


def _fingerprint(backend: object, backend_id: object) -> str:
    name = "?" if pd.isna(backend) else str(backend)
    return name if pd.isna(backend_id) else f"{name} {str(backend_id)[:8]}"


def plot_trend(trend: pd.DataFrame, path: Path, *, title: str, band: str) -> list[str]:
    """A PNG of WER over time, with interval bands, one line per :func:`trend_lines`; their labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=(10, 5.5), layout="constrained")  # no pyplot: no global state, no GUI backend
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    lines = trend_lines(trend)
    for label, group in lines:
        _plot_series(axes, label, group)
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    axes.set_ylim(bottom=0)
    axes.set(title=title, xlabel="run started (UTC)", ylabel=f"WER (band: {band})")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot create its folder ({exc.strerror or exc})") from None
    # the format by the target's suffix: the temporary file's name has none
    write_atomic(path, lambda tmp: figure.savefig(tmp, dpi=120, format=path.suffix.lstrip(".").lower() or "png"))
    return [label for label, _ in lines]


def _plot_series(axes: Axes, key: str, group: pd.DataFrame) -> None:
    x = group["started_utc"].to_numpy()
    wer = group["wer"].to_numpy(dtype=float)
    low, high = group["wer_ci_low"].to_numpy(dtype=float), group["wer_ci_high"].to_numpy(dtype=float)
    (line,) = axes.plot(x, wer, marker="o", label=key)
    if len(group) > 1:
        axes.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    else:
        axes.errorbar(x, wer, yerr=[wer - low, high - wer], color=line.get_color(), capsize=4)
