"""``report.md``: the run summary for CI logs and pull requests."""

from __future__ import annotations

from typing import Any

from harness.report.format import by_wer, disparity_sentence, pct

_HEADER = "| slice | WER | speaker-mean | utterance-mean | sub | del | ins | utts | speakers | words | failed | flags |"


def render_markdown(metrics: dict[str, Any]) -> str:
    prov, overall = metrics["provenance"], metrics["overall"]
    backend = prov["backend"]
    lines = [
        f"# asrfair report: {prov['run_name']}",
        "",
        f"- **Dataset**: `{prov['manifest']['path']}` (sha256 `{prov['manifest']['sha256'][:12]}`)",
        f"- **Backend**: {backend['name']} `{backend['id']}` — {_describe_backend(backend)}",
        f"- **Normaliser**: {prov['normalizer']} · **Scorer**: v{prov['scorer_version']} · "
        f"**Harness**: {prov['harness_version']} (git {prov['git_sha'] or 'n/a'})",
        f"- **Created**: {prov['created_utc']}",
        f"- **Aggregate**: {metrics['aggregate']} WER = Σ(S+D+I) / Σ reference words; speaker-mean "
        "and utterance-mean shown beside it.",
        f"- Slices with fewer than {metrics['thresholds']['min_speakers']} speakers or "
        f"{metrics['thresholds']['min_words']} words are flagged and not ranked.",
        "",
        "## Overall",
        "",
        f"WER **{pct(overall['wer'])}** over {overall['words']} words, {overall['utterances']} utterances, "
        f"{overall['speakers']} speakers (substitutions {pct(overall['sub_rate'])}, deletions "
        f"{pct(overall['del_rate'])}, insertions {pct(overall['ins_rate'])}); speaker-mean "
        f"{pct(overall['speaker_mean_wer'])}, utterance-mean {pct(overall['utterance_mean_wer'])}.",
    ]
    failures = metrics["failures"]
    if failures["count"]:
        lines += [
            "",
            f"**{failures['count']} utterances failed** ({pct(failures['rate'])}); they are "
            "excluded from WER and counted per slice. First errors:",
            "",
        ]
        lines += [f"- `{_cell(f['id'])}`: {_cell(f['error'] or '')}" for f in failures["examples"]]
    for dim in metrics["dimensions"]:
        lines += ["", f"## {dim['name']}", "", disparity_sentence(dim["disparity"]), "", _HEADER, "|" + "---|" * 12]
        lines += [_row(s) for s in by_wer(dim["slices"])]
    return "\n".join(lines) + "\n"


def _row(s: dict[str, Any]) -> str:
    cells = [
        _cell(s["label"]),
        pct(s["wer"]),
        pct(s["speaker_mean_wer"]),
        pct(s["utterance_mean_wer"]),
        pct(s["sub_rate"]),
        pct(s["del_rate"]),
        pct(s["ins_rate"]),
        str(s["utterances"]),
        str(s["speakers"]),
        str(s["words"]),
        str(s["failed"]),
        ", ".join(s["flags"]) or "",
    ]
    return "| " + " | ".join(cells) + " |"


def _cell(text: str) -> str:
    """Data strings cannot break the table or inject markup."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _describe_backend(backend: dict[str, Any]) -> str:
    fingerprint = backend["fingerprint"]
    parts = [f"{k}={v}" for k, v in fingerprint.items() if k not in ("backend", "options")]
    parts += [f"{k}={v}" for k, v in fingerprint.get("options", {}).items() if v not in (None, {}, [])]
    return _cell(", ".join(parts))
