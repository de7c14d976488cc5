"""The gate's outputs: gate.md (fit to paste into a pull request), JUnit XML, a terminal table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite
from rich.console import Console
from rich.table import Table

from harness.decide.gate import Check, CheckKind, GateResult, Status
from harness.files import write_atomic, write_json, write_text
from harness.report.format import gap_points, interval, md_text, pct, points
from harness.report.format import shown as escape  # long names clipped for display

MARK = {
    Status.REGRESSION: "❌ regression",
    Status.IMPROVED: "✅ improved",
    Status.PASS: "pass",
    Status.NOT_TESTED: "– not tested",
}
UNTESTED_MARK = "⚠ untested change"  # beyond the threshold, but no test could tell it from noise


def mark(check: Check) -> str:
    return UNTESTED_MARK if check.untested_change else MARK[check.status]


def value(check: Check, which: float | None) -> str:
    if which is None:
        return "–"
    if check.kind == CheckKind.RATIO:
        return f"{which:.2f}×"
    return gap_points(which) if check.kind == CheckKind.GAP else pct(which)  # worst − best: points, not a rate


def change(check: Check) -> str:
    if check.delta is None:
        return "–"
    if check.kind == CheckKind.RATIO:
        text = f"{check.delta:+.2f}×"
        ci = interval(check.ci, lambda v: f"{v:+.2f}×", unbounded=True)
    else:
        text, ci = points(check.delta), interval(check.ci, points)
    return f"{text} {ci}".strip()


def p_value(check: Check) -> str:
    if check.p_value is None:
        return "–"
    return "< 0.001" if check.p_value < 0.001 else f"{check.p_value:.3f}"


def headline(result: GateResult) -> str:
    bad, untested = result.regressions, result.untested_changes
    checks = f"{len(result.checks)} checks"
    if result.passed:
        plural = "s" if len(untested) > 1 else ""
        note = f"; ⚠ {len(untested)} untested change{plural} beyond the threshold" if untested else ""
        return f"✅ asrfair gate passed ({checks}{note})"
    parts = [f"{len(bad)} regression{'s' if len(bad) > 1 else ''}"] if bad else []
    if result.fails_on_untested:
        parts.append(f"{len(untested)} untested change{'s' if len(untested) > 1 else ''} (gate.untestable: fail)")
    return f"❌ asrfair gate failed: {' and '.join(parts)} in {checks}"


def render_markdown(result: GateResult) -> str:
    a, b = result.baseline, result.candidate
    lines = [
        f"## {headline(result)}",
        "",
        f"Candidate `{b['run_id']}` ({b['backend']}, fingerprint `{b['fingerprint']}`) against baseline "
        f"`{a['run_id']}` ({a['backend']}, fingerprint `{a['fingerprint']}`), paired over "
        f"**{result.shared_utterances} shared utterances**. A check fails when its change exceeds the threshold "
        f"and a paired sign-flip test over speakers says it is real (one-sided, Holm-corrected over {result.tests} "
        f"checks, so noise alone fails the gate with probability ≤ {100 * (1 - result.confidence):.0f} %). "
        f"Intervals: {100 * result.confidence:.0f} % speaker-clustered bootstrap ({result.bootstrap} replicates).",
        "",
    ]
    if result.regressions:
        lines += ["**What got worse:**", ""]
        lines += [
            f"- **{md_text(c.name)}**: {value(c, c.baseline)} → {value(c, c.candidate)} ({change(c)})"
            for c in result.regressions
        ]
        lines.append("")
    if result.untested_changes:
        lines += ["**⚠ Changed beyond the threshold, but too few speakers to test it:**", ""]
        lines += [
            f"- **{md_text(c.name)}**: {value(c, c.baseline)} → {value(c, c.candidate)} ({change(c)}); "
            f"{md_text(c.reason)}"
            for c in result.untested_changes
        ]
        lines.append("")
    if result.warnings:
        lines += ["> **Warnings:**", ">"]
        lines += [f"> - {md_text(w)}" for w in result.warnings]  # they quote slice names
        lines.append("")
    lines += [
        "| check | baseline | candidate | change [CI] | p (Holm) | fails above | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in result.checks:
        name = f"**{md_text(c.name)}**" if c.status == Status.REGRESSION or c.untested_change else md_text(c.name)
        lines.append(
            f"| {name} | {value(c, c.baseline)} | {value(c, c.candidate)} | {change(c)} | {p_value(c)} "
            f"| {c.threshold or '–'} | {mark(c)} |"
        )
    return "\n".join(lines) + "\n"


def write_junit(result: GateResult, path: Path) -> None:
    """One test case per check: a regression is a failure, an untestable check is skipped with its
    reason (never a passed test case); with ``gate.untestable: fail`` an untested change is a failure."""
    suite = TestSuite("asrfair gate")
    for check in result.checks:
        case = TestCase(check.name, classname=f"asrfair.gate.{check.kind}")
        message = (
            f"{check.name}: {value(check, check.baseline)} -> {value(check, check.candidate)} ({change(check)}); "
            f"{check.reason}"
        )
        if check.status == Status.REGRESSION:
            case.result = [Failure(message, "regression")]
        elif check.untested_change and result.fails_on_untested:
            case.result = [Failure(message, "untested")]
        elif check.status == Status.NOT_TESTED:
            case.result = [Skipped(check.reason)]
        case.system_out = message
        suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: xml.write(str(tmp), pretty=True))


def print_gate(result: GateResult, console: Console, warnings_to: Console | None = None) -> None:
    """The table on ``console``; warnings on ``warnings_to`` (stderr in the CLI)."""
    table = Table(title=headline(result), title_justify="left")
    for column in ("check", "baseline", "candidate", "change [CI]", "p (Holm)", "fails above", "result"):
        table.add_column(
            column, justify="right" if column in ("baseline", "candidate", "change [CI]", "p (Holm)") else "left"
        )
    for c in result.checks:
        style = "bold red" if c.status == Status.REGRESSION else ("green" if c.status == Status.IMPROVED else "")
        style = "bold yellow" if c.untested_change else style
        table.add_row(
            escape(c.name),
            value(c, c.baseline),
            value(c, c.candidate),
            change(c),
            p_value(c),
            c.threshold or "–",
            mark(c),
            style=style,
        )
    console.print(table)
    out = warnings_to or console
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    if result.untested_changes:
        names = escape(", ".join(c.name for c in result.untested_changes))
        if result.fails_on_untested:
            out.print(
                f"[bold red]gate failed:[/] {names} changed beyond the threshold with too few speakers to test it, "
                "and gate.untestable is fail; record more speakers, or set gate.untestable: warn"
            )
        else:
            out.print(
                f"[bold yellow]⚠ untested:[/] {names} changed beyond the threshold, but too few speakers for any test "
                f"to call it real; the gate cannot fail on {'it' if len(result.untested_changes) == 1 else 'them'} "
                "until more speakers are recorded (gate.untestable: fail makes it fail)"
            )


def write_gate(result: GateResult, folder: Path, junit: Path | None = None) -> list[Path]:
    """gate.md and gate.json into ``folder`` (and the JUnit XML when asked); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "gate.md", folder / "gate.json"]
    write_text(written[0], render_markdown(result))
    write_json(written[1], result.to_json())
    if junit is not None:
        write_junit(result, junit)
        written.append(junit)
    return written


def print_comparison(comparison: dict[str, Any], console: Console) -> None:
    a, b = comparison["A"], comparison["B"]
    console.print(
        f"A = {escape(str(a['run_id']))} ({escape(str(a['backend']))}), B = {escape(str(b['run_id']))} "
        f"({escape(str(b['backend']))}); paired over {comparison['shared_utterances']} shared utterances, "
        f"{100 * comparison['confidence']:.0f} % intervals"
    )
    overall = comparison["overall"]
    if overall is None:
        console.print("[yellow]no shared utterances: nothing to compare[/]")
        return
    for dim in [
        {"name": "overall", "slices": [{"label": "overall", **overall, "supported": True}]},
        *comparison["dimensions"],
    ]:
        table = Table(title=dim["name"], title_justify="left")
        for column in ("slice", "A", "B", "B − A [CI]", "flags"):
            table.add_column(column, justify="left" if column in ("slice", "flags") else "right")
        for s in dim["slices"]:
            delta = f"{points(s['delta'])} {interval(s['delta_ci'], points)}".strip()
            table.add_row(escape(s["label"]), pct(s["A"]), pct(s["B"]), delta, "" if s["supported"] else "thin")
        console.print(table)
        gap = dim.get("gap")
        if gap:
            console.print(
                f"  gap (worst − best): {gap_points(gap['A'])} → {gap_points(gap['B'])}, "
                f"change {points(gap['change'])} {interval(gap['change_ci'], points)}"
            )
    for warning in comparison["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
