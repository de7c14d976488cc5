"""The gate's outputs: gate.md (fit to paste into a pull request), JUnit XML, a terminal table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite
from rich.console import Console
from rich.table import Table

from harness.decide.gate import Check, GateResult
from harness.files import write_atomic
from harness.report.format import gap_points, interval, md_text, pct, points
from harness.report.format import shown as escape  # long names clipped for display

MARK = {"regression": "❌ regression", "improved": "✅ improved", "pass": "pass", "not tested": "– not tested"}


def value(check: Check, which: float | None) -> str:
    if which is None:
        return "–"
    if check.kind == "gap":  # worst − best: percentage points, not a rate
        return gap_points(which)
    return f"{which:.2f}×" if check.kind == "ratio" else pct(which)


def change(check: Check) -> str:
    if check.delta is None:
        return "–"
    if check.kind == "ratio":
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
    bad = result.regressions
    if not bad:
        return f"✅ asrfair gate passed ({len(result.checks)} checks)"
    return f"❌ asrfair gate failed: {len(bad)} regression{'s' if len(bad) > 1 else ''} in {len(result.checks)} checks"


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
    if result.warnings:
        lines += ["> **Warnings:**", ">"]
        lines += [f"> - {md_text(w)}" for w in result.warnings]  # they quote slice names
        lines.append("")
    lines += [
        "| check | baseline | candidate | change [CI] | p (Holm) | fails above | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in result.checks:
        name = f"**{md_text(c.name)}**" if c.status == "regression" else md_text(c.name)
        lines.append(
            f"| {name} | {value(c, c.baseline)} | {value(c, c.candidate)} | {change(c)} | {p_value(c)} "
            f"| {c.threshold or '–'} | {MARK[c.status]} |"
        )
    return "\n".join(lines) + "\n"


def write_junit(result: GateResult, path: Path) -> None:
    """One test case per check: a regression is a failure, an untestable check is skipped."""
    suite = TestSuite("asrfair gate")
    for check in result.checks:
        case = TestCase(check.name, classname=f"asrfair.gate.{check.kind}")
        message = (
            f"{check.name}: {value(check, check.baseline)} -> {value(check, check.candidate)} ({change(check)}); "
            f"{check.reason}"
        )
        if check.status == "regression":
            case.result = [Failure(message, "regression")]
        elif check.status == "not tested":
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
        style = "bold red" if c.status == "regression" else ("green" if c.status == "improved" else "")
        table.add_row(
            escape(c.name),
            value(c, c.baseline),
            value(c, c.candidate),
            change(c),
            p_value(c),
            c.threshold or "–",
            MARK[c.status],
            style=style,
        )
    console.print(table)
    for warning in result.warnings:
        (warnings_to or console).print(f"[yellow]warning:[/] {escape(warning)}")


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
