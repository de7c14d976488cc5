"""Number formatting shared by the Markdown and terminal reports."""

from __future__ import annotations

from typing import Any


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f} pp"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def by_wer(slices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Worst first; slices without a WER (all failed, no words) last."""
    return sorted(slices, key=lambda s: (s["wer"] is None, -(s["wer"] or 0.0), s["label"]))


def disparity_sentence(disparity: dict[str, Any]) -> str:
    failures = disparity.get("with_failures") or []
    failed = f" Some utterances failed in: {', '.join(failures)} (see the failed column)." if failures else ""
    if disparity["worst"] is None:
        return (disparity["note"] or "no disparity computed") + failed
    return (
        f"Worst **{disparity['worst']}** ({pct(disparity['worst_wer'])}) vs best "
        f"**{disparity['best']}** ({pct(disparity['best_wer'])}): ratio {ratio(disparity['ratio'])}, "
        f"gap {points(disparity['gap'])}; worst vs overall {points(disparity['worst_vs_overall'])} "
        f"({disparity['ranked']} slices ranked).{failed}"
    )
