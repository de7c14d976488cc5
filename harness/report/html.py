"""``report.html``: one self-contained page for reviewers and model owners.

Everything is inline (styles, SVG charts, a few lines of script for sorting), so the file opens
offline in any browser and can be attached to a review. Every string that comes from data
(transcripts, tags, ids, file names, config values) is escaped by Jinja's autoescape; the SVG
charts escape their own labels. The only external references are the audio clips of the worst
utterances, linked relative to the report when the files exist.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jiwer
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from harness.conditions import CONDITION_TAG
from harness.report.format import (
    AGGREGATE_DEFINITIONS,
    ROBUST_CONDITION_HEADER,
    ROBUST_HEADER,
    aggregate_value,
    badly_served,
    detectable,
    detectable_sentence,
    discovery_summary,
    disparity_sentence,
    effect_cells,
    empty_references_sentence,
    finding_cells,
    gap_points,
    interval,
    model_lines,
    normalization_cells,
    normalization_disparity,
    normalization_header,
    others,
    pct,
    pct_ci,
    points,
    pooled_over_conditions,
    quartiles,
    ratio,
    robust_cells,
    robust_changes,
    robust_condition_cells,
    runaway_sentence,
    sensitivity_sentence,
    shift_cells,
    slice_wer,
    test_sentence,
)
from harness.report.summary import BETWEEN, GAP, MIXED, NONE, UNKNOWN, plain_summary
from harness.report.svg import Bar, HeatCell, heatmap, interval_chart
from harness.stats.by_slice import cluster_units
from harness.stats.coverage import CoverageCell, coverage_of_table, matrix
from harness.stats.robust import scoped_specs
from harness.stats.slices import SliceCodes, SliceSpec, TagCodes, slice_codes

if TYPE_CHECKING:
    from harness.results import RunResult
    from harness.stats.options import StatsOptions
    from harness.stats.records import Degradation, Dimension, ModelResult, NormalizerSensitivity, RobustView, SliceStats

log = logging.getLogger(__name__)

WORST_PER_SLICE = 3
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
VERDICT_CLASS = {GAP: "gap", BETWEEN: "gap", MIXED: "mixed", NONE: "none", UNKNOWN: "unknown"}


def render_html(
    result: RunResult,
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    *,
    report_dir: Path,
    comparison: dict[str, Any] | None = None,
    discovery: dict[str, Any] | None = None,
) -> str:
    """The page for one scored run; ``comparison`` is :func:`harness.decide.gate.compare_sides`'s output."""
    environment = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["bold"] = _bold
    environment.filters["code"] = _code
    environment.tests["length_is_one"] = lambda rows: len(rows) == 1
    context = _context(result, table, specs, report_dir, comparison)
    context["discovery"] = _discovery(discovery)
    context["summary"] = plain_summary(result, discovery)
    context["verdict_class"] = VERDICT_CLASS
    return environment.get_template("report.html.j2").render(**context)


def _code(text: str) -> Markup:
    """The summary's `command` spans as <code>, after escaping everything else."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))


def _bold(text: str) -> Markup:
    """The reports' ``**word**`` emphasis as <strong>, after escaping everything else."""
    return Markup(_BOLD.sub(r"<strong>\1</strong>", str(escape(text))))


def _context(
    result: RunResult,
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    report_dir: Path,
    comparison: dict[str, Any] | None,
) -> dict[str, Any]:
    prov, stats, aggregate = result.provenance, result.options, result.headline.aggregate
    conditions = prov.get("config", {}).get("conditions") or []
    if result.runaway and conditions:  # scored with recorded dimensions on the reference condition only
        specs = scoped_specs(specs, conditions[0]["name"])
    dimensions = [
        {**_dimension(dim, result.evidence(dim), table, spec, stats, aggregate), **_beside(result, index)}
        for index, (dim, spec) in enumerate(zip(result.dimensions, specs, strict=True))
    ]
    has_audio = _attach_audio(dimensions, prov, report_dir)
    return {
        "title": f"asrfair report: {prov['run_name']}",
        "prov": prov,
        "backend_options": json.dumps(prov["backend"].get("fingerprint", {}), indent=2, default=str),
        "config": json.dumps(prov.get("config", {}), indent=2, default=str),
        "overall": result.overall,
        "overall_text": pct_ci(result.overall.wer, result.overall.wer_ci),
        "aggregate": aggregate,
        "aggregate_definition": AGGREGATE_DEFINITIONS[aggregate],
        "others": others(aggregate),
        "overall_others": [(a, pct(aggregate_value(result.overall, a))) for a in others(aggregate)],
        "overall_badly": badly_served(result.overall),
        "threshold": pct(result.aggregates.speaker_wer_threshold),
        "headline_notes": (
            pooled_over_conditions(result.conditions, bool(result.runaway))
            + empty_references_sentence(result.aggregates)
        ).strip(),
        "caveats": result.caveats,
        "skipped": prov.get("conditions_skipped") or [],
        "model": _model(result.model),
        "stats": stats,
        "failures": result.failures,
        "dimensions": dimensions,
        "coverage": _coverage(table, result, specs),
        "conditions": _conditions(result.conditions),
        "normalization": _normalization(result.normalization),
        "runaway": _runaway(result.runaway),
        "warnings": result.warnings,
        "comparison": _comparison(comparison),
        "has_audio": has_audio,
    }


def _dimension(
    dim: Dimension, evidence: str, table: pd.DataFrame, spec: SliceSpec, stats: StatsOptions, aggregate: str
) -> dict[str, Any]:
    ordered = sorted(dim.slices, key=lambda s: (s.wer is None, -(s.wer or 0.0), s.label))
    codes = slice_codes(table, spec, TagCodes(table))
    spread = _speaker_wers(table, codes)
    bars = [
        Bar(
            s.label,
            s.wer,
            *(s.wer_ci or [None, None]),
            thin=not s.supported,
            marked=bool(s.significantly_worse),
            speakers=spread.get(s.label, ()),
        )
        for s in ordered
    ]
    rows = [
        {
            "label": s.label,
            "star": bool(s.significantly_worse),
            "wer": s.wer,
            "wer_text": slice_wer(s),
            "others": [pct(aggregate_value(s, a)) for a in others(aggregate)],
            "badly": badly_served(s),
            "vs_overall": s.vs_overall.difference if s.vs_overall else None,
            "vs_overall_text": points(s.vs_overall.difference if s.vs_overall else None),
            "detectable": s.vs_overall.min_detectable if s.vs_overall else None,
            "detectable_text": detectable(s),
            "sub": s.sub_rate,
            "del": s.del_rate,
            "ins": s.ins_rate,
            "utterances": s.utterances,
            "speakers": s.speakers,
            "words": s.words,
            "failed": s.failed,
            "flags": ", ".join(s.flags),
            "thin": not s.supported,
        }
        for s in ordered
    ]
    single = len(dim.by) == 1
    return {
        "name": dim.name,
        "evidence": evidence,
        "by": dim.by,
        "chart": Markup(interval_chart(bars, dim.overall_wer, dim.overall_wer_ci)),
        "heatmap": None if single else _intersection_heatmap(dim),
        "disparity": disparity_sentence(dim.disparity),
        "test": test_sentence(dim.test, stats.confidence),
        "detectable": detectable_sentence(dim, stats),
        "rows": rows,
        "worst": _worst(table, codes, dim) if single and CONDITION_TAG not in dim.by else [],
    }


def _beside(result: RunResult, index: int) -> dict[str, Any]:
    """What the terminal and report.md show under a dimension's table: the dimension under each
    aggregate (with the badly-served share and speaker quartiles), whether the aggregate changes the
    finding, and each slice against the ``reference:`` group."""
    headline = result.headline.aggregate
    blocks = {a: summary.dimensions[index] for a, summary in result.aggregates.blocks.items()}
    dim = result.dimensions[index]
    by_label = {a: {s.label: s for s in d.slices} for a, d in blocks.items()}
    ordered = sorted(dim.slices, key=lambda s: (s.wer is None, -(s.wer or 0.0), s.label))
    aggregate_rows = [
        {
            "label": s.label,
            "cells": [slice_wer(by_label[a][s.label]) for a in blocks],
            "badly": f"{badly_served(s)} {interval(s.speakers_wer.share_ci if s.speakers_wer else None)}".strip(),
            "quartiles": quartiles(s),
        }
        for s in ordered
        if all(s.label in by_label[a] for a in blocks)
    ]
    gaps = [
        f"{a}: gap {gap_points(d.disparity.gap)} {interval(d.disparity.gap_ci, gap_points)}".strip()
        for a, d in blocks.items()
        if d.disparity.gap is not None
    ]
    sensitivity = result.aggregates.sensitivity
    reference = dim.disparity.reference
    return {
        "aggregate_names": [f"{a} (headline)" if a == headline else a for a in blocks],
        "aggregate_rows": aggregate_rows if len(blocks) > 1 else [],
        "aggregate_gaps": "Disparity under each aggregate: " + "; ".join(gaps) + "." if gaps else "",
        "sensitivity": sensitivity_sentence(sensitivity[index]) if index < len(sensitivity) else "",
        "reference": reference,
        "reference_rows": [_reference_cells(s) for s in ordered if s.vs_reference] if reference else [],
    }


def _reference_cells(s: SliceStats) -> list[str]:
    ref = s.vs_reference
    ratio_ci = interval(ref.ratio_ci, lambda v: ratio(v)[:-1], unbounded=True)
    return [
        s.label,
        f"{points(ref.difference)} {interval(ref.difference_ci, points, note=ref.note)}".strip(),
        "–" if ref.ratio is None else f"{ref.ratio:.2f}× {ratio_ci}".strip(),
    ]


def _model(model: ModelResult | None) -> dict[str, Any] | None:
    """The rate model: each tag's effect with the others held fixed (harness/stats/rate_model.py)."""
    if not model:
        return None
    return {"lines": model_lines(model), "effects": [effect_cells(e) for e in model.effects or []]}


def _speaker_wers(table: pd.DataFrame, codes: SliceCodes) -> dict[str, tuple[float, ...]]:
    """Per slice label, each speaker's own pooled WER there (speakers with reference words)."""
    scored = (codes.codes >= 0) & (table["status"] == "ok").to_numpy()
    frame = pd.DataFrame(
        {
            "slice": codes.codes[scored],
            "speaker": cluster_units(table).to_numpy()[scored],
            "errors": table["errors"].to_numpy(dtype=float, na_value=0.0)[scored],
            "words": table["ref_words"].to_numpy(dtype=float, na_value=0.0)[scored],
        }
    )
    sums = frame.groupby(["slice", "speaker"])[["errors", "words"]].sum()
    sums = sums[sums["words"] > 0]
    wer = (sums["errors"] / sums["words"]).groupby(level="slice")
    return {codes.labels[int(code)]: tuple(values.to_list()) for code, values in wer}


def _intersection_heatmap(dim: Dimension) -> Markup:
    """Rows: the first tag's values; columns: the rest; colour: WER; text: WER and support."""
    first, rest = dim.by[0], dim.by[1:]
    cells = {}
    for s in dim.slices:
        key = (s.values[first], " × ".join(s.values[t] for t in rest))
        cells[key] = HeatCell(s.wer, pct(s.wer), f"{s.speakers} spk · {s.words} w", not s.supported)
    rows = sorted({k[0] for k in cells})
    columns = sorted({k[1] for k in cells})
    return Markup(heatmap(rows, columns, cells))


def _worst(table: pd.DataFrame, codes: SliceCodes, dim: Dimension) -> list[dict[str, Any]]:
    """Per slice, its utterances with the most errors, reference and transcript aligned."""
    scored = (table["status"] == "ok").to_numpy()
    errors = table["errors"].to_numpy(dtype=float, na_value=np.nan)
    out = []
    by_label = {s.label: s for s in dim.slices}
    for index, label in enumerate(codes.labels):
        rows = np.flatnonzero((codes.codes == index) & scored & (errors > 0))
        if not len(rows) or label not in by_label:
            continue
        picked = rows[np.lexsort((table["id"].to_numpy()[rows], -errors[rows]))][:WORST_PER_SLICE]
        out.append(
            {
                "label": label,
                "wer": by_label[label].wer,
                "utterances": [_aligned(table.iloc[row]) for row in picked],
            }
        )
    return sorted(out, key=lambda entry: -(entry["wer"] or 0.0))


def _aligned(row: pd.Series) -> dict[str, Any]:
    """Word pairs in alignment order, each ``(kind, reference word, transcript word)``."""
    reference, hypothesis = str(row["ref_norm"]), str(row["hyp_norm"])
    pairs: list[tuple[str, str, str]] = []
    if reference.split():
        result = jiwer.process_words(reference, hypothesis)
        ref_words, hyp_words = result.references[0], result.hypotheses[0]
        for chunk in result.alignments[0]:
            refs = ref_words[chunk.ref_start_idx : chunk.ref_end_idx]
            hyps = hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
            if chunk.type == "delete":
                pairs += [("delete", r, "") for r in refs]
            elif chunk.type == "insert":
                pairs += [("insert", "", h) for h in hyps]
            else:
                pairs += [(chunk.type, r, h) for r, h in zip(refs, hyps, strict=True)]
    else:  # an empty reference: every transcript word is an insertion
        pairs = [("insert", "", h) for h in hypothesis.split()]
    wer = row["wer"]
    return {
        "id": row["id"],
        "speaker": row["speaker"],
        "errors": int(row["errors"]),
        "words": int(row["ref_words"]),
        "wer": None if pd.isna(wer) else float(wer),
        "pairs": pairs,
        "reference": row["reference"],
        "hypothesis": row["hypothesis"],
        "condition": row.get(CONDITION_TAG),  # with simulated conditions: which rendering was heard
        "audio": None,  # filled in by _attach_audio
    }


def _attach_audio(dimensions: list[dict[str, Any]], prov: dict[str, Any], report_dir: Path) -> bool:
    """Give each listed worst utterance its clip, relative to the report (with a media fragment
    for segments), where the file exists here. Reads only the manifest's path columns."""
    listed = [utt for dim in dimensions for group in dim["worst"] for utt in group["utterances"]]
    conditions = prov.get("config", {}).get("conditions") or []
    reference = conditions[0]["name"] if conditions else None
    clips = _clips(Path(prov.get("manifest", {}).get("path", "")), {str(u["id"]) for u in listed}) if listed else {}
    for utt in listed:
        clip = clips.get(str(utt["id"]))
        if clip is None:
            continue
        path, offset, duration = clip
        if path.is_file() and utt["condition"] in (None, reference):  # the player plays the recording
            link = quote(Path(os.path.relpath(path, report_dir)).as_posix())
            if offset or duration:
                link += f"#t={offset:g}" + (f",{offset + duration:g}" if duration else "")
            utt["audio"] = link
    return any(utt["audio"] for utt in listed)


def _clips(manifest: Path, ids: set[str]) -> dict[str, tuple[Path, float, float | None]]:
    """id → (audio path, offset, duration) for ``ids``; empty when the manifest is gone or unreadable
    (a player is a convenience: the report never fails over one)."""
    if not manifest.is_file():
        return {}
    try:
        if manifest.suffix.lower() == ".csv":
            frame = pd.read_csv(manifest, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            frame = pajson.read_json(manifest).to_pandas()
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        log.debug("no audio links: %s unreadable (%s)", manifest, exc)
        return {}
    if "id" not in frame or "audio" not in frame:
        return {}
    frame = frame[frame["id"].astype(str).isin(ids)]
    out = {}
    for row in frame.to_dict("records"):
        audio = Path(str(row["audio"]))
        offset = pd.to_numeric(row.get("offset") or 0, errors="coerce")
        duration = pd.to_numeric(row.get("duration"), errors="coerce") if row.get("duration") else None
        out[str(row["id"])] = (
            audio if audio.is_absolute() else manifest.parent / audio,
            0.0 if pd.isna(offset) else float(offset),
            None if duration is None or pd.isna(duration) else float(duration),
        )
    return out


def _coverage(table: pd.DataFrame, result: RunResult, specs: Sequence[SliceSpec]) -> list[dict[str, Any]]:
    """Speakers per cell for every pair of the run's single-tag dimensions (on the rows scored)."""
    stats = result.options
    conditions = result.provenance.get("config", {}).get("conditions") or []
    if conditions and CONDITION_TAG in table.columns:  # recorded speech once, not once per condition
        table = table[table[CONDITION_TAG] == conditions[0]["name"]]
    tags = [
        s.by[0]
        for s in specs
        if len(s.by) == 1 and s.by[0] != CONDITION_TAG and s.by[0] in table and table[s.by[0]].nunique() > 1
    ]
    pairs = [SliceSpec(by=(a, b)) for i, a in enumerate(tags) for b in tags[i + 1 :]]
    out = []
    for cov in coverage_of_table(table, pairs, stats.min_speakers, stats.min_words):
        down, across, rows, columns, cells = matrix(cov)
        heat = {key: _coverage_cell(cell) for key, cell in cells.items()}
        svg = Markup(heatmap(rows, columns, heat, palette="count"))
        out.append({"name": cov.name, "down": down, "across": across, "svg": svg})
    return out


def _coverage_cell(cell: CoverageCell) -> HeatCell:
    return HeatCell(float(cell.speakers), f"{cell.speakers} spk", f"{cell.words} words", cell.thin)


def _runaway(block: RobustView | None) -> dict[str, Any] | None:
    """The robust view's tables as rows of text cells (harness/report/format.py shares them)."""
    if not block:
        return None
    return {
        "scope": block.scope,
        "sentence": runaway_sentence(block),
        "changes": robust_changes(block),
        "header": ROBUST_HEADER,
        "dimensions": [{"name": d.name, "rows": [robust_cells(s) for s in d.slices]} for d in block.dimensions],
        "condition_header": ROBUST_CONDITION_HEADER,
        "conditions": [robust_condition_cells(c, i == 0) for i, c in enumerate(block.conditions)],
    }


SHIFT_HEADER = (
    "condition",
    "ΔWER [CI]",
    "gap [CI]",
    "gap change [CI]",
    "ratio change [CI]",
    "most degraded",
    "interaction (▲ test)",
)


def _conditions(block: Degradation | None) -> dict[str, Any] | None:
    """Per dimension: a heatmap of paired ΔWER per slice per condition, each cell with its interval
    and ▲; then each condition's shift of the dimension's gap and the interaction test."""
    if not block:
        return None
    names = [c.name for c in block.conditions]
    dims = []
    for dim in block.dimensions:
        cells = {}
        for s in dim.slices:
            for cell in s.cells[1:]:
                marker = " ▲" if cell.degrades_more else ""
                ci = interval(cell.delta_ci, lambda v: f"{100 * v:+.1f}")
                why = f"no interval: {cell.note}; " if cell.note and not ci else ""
                cells[(s.label, cell.condition)] = HeatCell(
                    cell.delta,
                    f"{points(cell.delta)}{marker}",
                    f"{ci} pp" if ci else "[– no interval]",  # the reason is on hover: a cell is narrow
                    not s.supported,
                    f"{why}WER {pct_ci(cell.wer, cell.wer_ci)}",
                )
        rows = [s.label for s in dim.slices]
        dims.append(
            {
                "name": dim.name,
                "svg": Markup(heatmap(rows, names[1:], cells, palette="change")),
                "note": dim.note,
                "reference_gap": gap_points(dim.reference_gap),
                "shifts": [shift_cells(shift) for shift in dim.shifts or []],
            }
        )
    return {
        "reference": block.reference,
        "paired": block.paired_utterances,
        "excluded": block.excluded_utterances,
        "shift_header": SHIFT_HEADER,
        "conditions": [
            {
                "name": c.name,
                "description": c.description,
                "wer": pct_ci(c.wer, c.wer_ci),
                "delta": "–"
                if c.name == block.reference
                else f"{points(c.delta)} {interval(c.delta_ci, points)}".strip(),
                "utterances": c.utterances,
                "failed": c.failed,
            }
            for c in block.conditions
        ],
        "dimensions": dims,
    }


def _normalization(block: NormalizerSensitivity | None) -> dict[str, Any] | None:
    if not block:
        return None
    return {
        "normalizers": block.normalizers,
        "flags": block.flags,
        "header": normalization_header(block),
        "dimensions": [
            {
                "name": d.name,
                "rows": [{"cells": normalization_cells(s), "flagged": s.flagged} for s in d.slices],
                "disparity": normalization_disparity(d, block.normalizers),
            }
            for d in block.dimensions
        ],
    }


def _discovery(block: dict[str, Any] | None) -> dict[str, Any] | None:
    if not block:
        return None
    return {
        "summary": discovery_summary(block),
        "rows": [
            {"cells": finding_cells(i, f), "difference": f["confirmation"]["difference"]}
            for i, f in enumerate(block["findings"], 1)
        ],
        "pruned": block["pruned"],
    }


def _comparison(comparison: dict[str, Any] | None) -> dict[str, Any] | None:
    if not comparison or comparison.get("overall") is None:
        return comparison and {"other": comparison["A"], "warnings": comparison["warnings"], "dimensions": []}
    overall = comparison["overall"]
    return {
        "other": comparison["A"],
        "warnings": comparison["warnings"],
        "shared": comparison["shared_utterances"],
        "overall": {"a": pct(overall["A"]), "b": pct(overall["B"]), "delta": _delta(overall)},
        "dimensions": [
            {
                "name": d["name"],
                "rows": [
                    {"label": s["label"], "a": pct(s["A"]), "b": pct(s["B"]), "delta": _delta(s), "value": s["delta"]}
                    for s in d["slices"]
                ],
                "gap": _gap_change(d.get("gap")),
            }
            for d in comparison["dimensions"]
        ],
    }


def _gap_change(gap: dict[str, Any] | None) -> str:
    """The dimension's worst − best gap in each run and its paired change (compare_sides)."""
    if not gap or (gap.get("A") is None and gap.get("B") is None):
        return ""
    change = f"{points(gap.get('change'))} {interval(gap.get('change_ci'), points)}".strip()
    return f"Gap (worst − best): {gap_points(gap.get('A'))} → {gap_points(gap.get('B'))}, change {change}."


def _delta(entry: dict[str, Any]) -> str:
    ci = entry.get("delta_ci") or [None, None]
    text = points(entry.get("delta"))
    if ci[0] is not None and ci[1] is not None:
        text += f" [{points(ci[0])}, {points(ci[1])}]"
    return text
