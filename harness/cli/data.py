"""Commands about inputs: validate, import, importers, coverage, normalizers, backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from harness.cli.common import app, err_console, handle_errors, stdout_console, type_name
from harness.errors import (
    EXIT_BAD_INPUT,
    HarnessError,
    Interrupted,
)
from harness.stats.options import StatsOptions


@app.command("validate")
@handle_errors
def validate_command(
    manifest: Annotated[Path, typer.Argument(help="manifest (.jsonl or .csv)")],
    no_audio: Annotated[bool, typer.Option("--no-audio", help="skip opening the audio files")] = False,
    audio_roots: Annotated[
        list[Path] | None,
        typer.Option("--audio-root", help="a folder outside the manifest's own that audio may come from (repeatable)"),
    ] = None,
) -> None:
    """Check a manifest: every problem reported with file and line. Exit 2 on errors."""
    from harness.data.manifest import read_manifest

    result = read_manifest(manifest, check_audio=not no_audio, audio_roots=audio_roots or ())
    for problem in result.problems:
        style = "red" if problem.level == "error" else "yellow"
        err_console.print(f"[{style}]{escape(str(problem))}[/]", soft_wrap=True, highlight=False)
    speakers = {u.speaker for u in result.utterances if u.speaker}
    typer.echo(
        f"{manifest}: {len(result.utterances)} utterances, {len(speakers)} speakers, "
        f"tags: {', '.join(result.tag_names) or 'none'}; "
        f"{len(result.errors)} errors, {len(result.warnings)} warnings"
    )
    if result.errors:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("import")
@handle_errors
def import_command(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="corpus format; 'asrfair importers' lists them")],
    source: Annotated[Path, typer.Argument(help="the corpus folder, as released")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="manifest to write, e.g. datasets/NAME/manifest.jsonl")
    ],
    split: Annotated[str | None, typer.Option("--split", help="which split, where the format has them")] = None,
    tag_map: Annotated[
        Path | None, typer.Option("--map", help="YAML mapping raw tag values to canonical ones (docs/datasets.md)")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="write every rejected row here (default: <manifest>.rejects.jsonl if any)"),
    ] = None,
    options: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="importer option key=value (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Turn a released corpus into a manifest, streaming: counts per tag value, every rejected row kept."""
    from harness.data.importers import ImporterRegistry, parse_options
    from harness.data.importers.tagmap import read_tag_map
    from harness.data.importers.writer import import_corpus
    from harness.report.imports import print_import_summary

    mapping = read_tag_map(tag_map) if tag_map is not None else None
    importer = ImporterRegistry.default().create(fmt, source, parse_options(options or []), split)
    progress = Progress(
        TextColumn(f"importing {escape(fmt)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("import", total=importer.estimate())
        try:
            summary = import_corpus(
                importer, output, tag_map=mapping, rejects=rejects, progress=lambda n: progress.advance(task, n)
            )
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; {output} is as it was before the import (rerun the command)") from None
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        print_import_summary(summary, stdout_console())
    if summary.card_kept:
        err_console.print(escape(f"kept {summary.card}, which was not written by an import"))
    root = f" --audio-root {summary.audio_outside}" if summary.audio_outside else ""
    err_console.print(escape(f"next: asrfair validate {output}{root}"), highlight=False)
    if summary.audio_outside:
        err_console.print(
            escape(
                f"the audio stays in {summary.audio_outside}: add 'audio_roots: [{summary.audio_outside}]' "
                "to run configs that use this manifest"
            ),
            highlight=False,
        )


@app.command("importers")
@handle_errors
def importers_command(as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False) -> None:
    """List corpus formats 'asrfair import' reads (built-in and 'asrfair.importers' entry points)."""
    from harness.data.importers import ImporterRegistry

    registry = ImporterRegistry.default()
    listing = []
    for name in registry.names():
        try:
            cls = registry.load(name)
        except HarnessError as exc:  # one broken plugin does not hide the others
            listing.append(
                {"name": name, "description": str(exc), "splits": [], "free_split": "", "tags": {}, "options": {}}
            )
            continue
        listing.append(
            {
                "name": name,
                "description": cls.description,
                "splits": list(cls.splits),
                "free_split": cls.free_split,
                "tags": {tag: info.description for tag, info in cls.tags.items()},
                "options": {
                    key: {"default": f.get_default(call_default_factory=True), "description": f.description or ""}
                    for key, f in cls.Options.model_fields.items()
                },
            }
        )
    if as_json:
        typer.echo(json.dumps(listing, indent=2, default=str))
        return
    console = stdout_console()
    for entry in listing:
        table = Table(title=escape(f"{entry['name']}: {entry['description']}"), title_justify="left")
        table.add_column("yields / option")
        table.add_column("description")
        if entry["splits"]:
            table.add_row("--split", escape(", ".join(entry["splits"]) + f" (default {entry['splits'][0]})"))
        elif entry["free_split"]:
            table.add_row("--split NAME", escape(entry["free_split"]))
        for tag, description in entry["tags"].items():
            table.add_row(escape(tag), escape(description))
        for key, option in entry["options"].items():
            table.add_row(escape(f"-O {key}={option['default']}"), escape(option["description"]))
        console.print(table)


@app.command("coverage")
@handle_errors
def coverage_command(
    manifest: Annotated[Path, typer.Argument(help="manifest (.jsonl or .csv)")],
    slices: Annotated[
        Path | None, typer.Option("--slices", help="slice YAML: its intersections, groups and bins are counted too")
    ] = None,
    min_speakers: Annotated[int, typer.Option("--min-speakers", min=1, help="thin below this many speakers")] = (
        StatsOptions.min_speakers
    ),
    min_words: Annotated[int, typer.Option("--min-words", min=1, help="thin below this many reference words")] = (
        StatsOptions.min_words
    ),
    no_audio: Annotated[
        bool, typer.Option("--no-audio", help="do not read audio headers for utterances without 'duration'")
    ] = False,
    audio_roots: Annotated[
        list[Path] | None,
        typer.Option("--audio-root", help="a folder outside the manifest's own whose audio headers may be read"),
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--md", help="also write the tables as Markdown")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the coverage as JSON")] = False,
    max_pair_tags: Annotated[
        int, typer.Option("--max-pair-tags", min=0, help="no pair tables above this many tags")
    ] = 40,
) -> None:
    """Speakers, utterances, words and hours per tag value and per pair of tags; thin and empty cells.

    Needs no backend and decodes no audio: run it before recording more, or before trusting a
    "no significant gap".
    """
    from dataclasses import asdict

    from harness.files import write_text
    from harness.report.coverage import print_coverage, render_coverage_markdown
    from harness.stats.coverage import coverage
    from harness.stats.slices import load_slices

    result = coverage(
        manifest,
        slices=load_slices(slices) if slices else (),
        min_speakers=min_speakers,
        min_words=min_words,
        read_durations=not no_audio,
        audio_roots=audio_roots or (),
        max_pair_tags=max_pair_tags,
    )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if markdown is not None:
        write_text(markdown, render_coverage_markdown(result))
        err_console.print(f"wrote {markdown}")
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2, ensure_ascii=False))
    else:
        print_coverage(result, stdout_console())


@app.command("normalizers")
@handle_errors
def normalizers_command(
    text: Annotated[str | None, typer.Option("--text", help="show what each normaliser makes of this text")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False,
) -> None:
    """List the text normalisers (built-in presets and plugins), optionally applied to a sample text."""
    from harness.scoring.normalisers import available_normalizers

    found = available_normalizers()
    rows = [
        {
            "normalizer": n.stamp,
            "description": n.description,
            "source": n.source,
            "library": n.library,
            **({"text": n(text)} if text is not None else {}),
        }
        for n in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title="Normalisers (docs/normalisation.md lists every rule)", title_justify="left")
    for column in ("normalizer", "output" if text is not None else "description", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row["normalizer"]),
            escape(row["text"] if text is not None else row["description"]),
            escape(row["source"]),
        )
    stdout_console().print(table)


@app.command("backends")
@handle_errors
def backends_command(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False,
) -> None:
    """List registered backends (built-in and from the 'asrfair.backends' entry points) and their options."""
    from harness.backends.base import Registry

    registry = Registry.default()
    listing = []
    for name in registry.names():
        try:
            cls = registry.load(name)
        except HarnessError as exc:
            listing.append({"name": name, "error": str(exc), "options": {}})
            continue
        options = {
            key: {
                "type": type_name(f.annotation),
                "default": None if f.is_required() else f.get_default(call_default_factory=True),
                "description": f.description or "",
            }
            for key, f in cls.Options.model_fields.items()
        }
        listing.append({"name": name, "description": cls.description, "options": options})
    if as_json:
        typer.echo(json.dumps(listing, indent=2, default=str))
        return
    console = Console()
    for entry in listing:
        table = Table(
            title=f"{entry['name']}: {entry.get('description') or entry.get('error', '')}", title_justify="left"
        )
        for column in ("option", "type", "default", "description"):
            table.add_column(column)
        for key, opt in entry["options"].items():
            table.add_row(
                key, escape(opt["type"]), escape(json.dumps(opt["default"], default=str)), escape(opt["description"])
            )
        console.print(table)
