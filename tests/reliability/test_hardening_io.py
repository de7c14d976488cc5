"""Issue 29 (output paths, configs, inputs): every case the adversarial audit broke, as a regression test.

Output targets that are not regular files are written through, never replaced (FIFOs made here stand
in for device nodes: tests never touch real ones); over-large or malformed inputs end in one line and
exit 2, never a segfault, a traceback (exit 4) or an effective hang.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import duckdb
import pytest
from conftest import write_config
from typer.testing import CliRunner

from harness.cli import app
from harness.config import load_config
from harness.errors import InputError
from harness.files import replace_quietly, write_atomic, write_table
from harness.pipeline import prepare, run


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.returncode, self.stdout, self.stderr = code, out, err


def cli(*args: str) -> Result:
    """The CLI in-process (fast: no interpreter start); exceptions that escape it are bugs."""
    outcome = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)


def clean_exit_2(result: Result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


class FifoReader:
    """Reads everything written to a FIFO in a thread, so a writer that opens it does not block."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path, self.data = path, b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as fifo:
            self.data = fifo.read()

    def finish(self) -> bytes:
        self.thread.join(timeout=60)
        if self.thread.is_alive():  # nothing opened the FIFO: unblock the reader, then fail
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(timeout=60)
        assert stat.S_ISFIFO(self.path.lstat().st_mode), "the FIFO was replaced"
        return self.data


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from conftest import write_jsonl, write_tone

    folder = tmp_path_factory.mktemp("run")
    write_tone(folder / "tone.wav")
    records = [
        {"id": f"u{i}", "audio": "tone.wav", "text": "the quick brown fox jumps", "speaker": f"s{i % 6}",
         "accent": "ab"[i % 2]}
        for i in range(24)
    ]
    manifest = write_jsonl(folder / "manifest.jsonl", records)
    config = write_config(folder / "run.yaml", manifest, {"name": "stub", "default_rate": 0.1})
    return run(prepare(load_config(config))).paths.root


# --- 1. output paths that are devices or FIFOs ---------------------------------------------------------


def test_write_atomic_writes_through_a_fifo_and_never_replaces_it(tmp_path):
    reader = FifoReader(tmp_path / "out.md")
    write_atomic(reader.path, lambda tmp: tmp.write_text("hello", encoding="utf-8"))
    assert reader.finish() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.md"]  # no temporary left beside it


def test_write_atomic_refuses_a_directory_target(tmp_path):
    with pytest.raises(InputError, match=r"cannot write \(it is a directory\)"):
        write_atomic(tmp_path, lambda tmp: tmp.write_text("x"))


@pytest.mark.parametrize("command", ["report", "coverage", "plan"])
def test_cli_outputs_write_through_a_fifo(finished_run, tmp_path, command):
    reader = FifoReader(tmp_path / "out.fifo")
    args = {
        "report": ["report", str(finished_run), "-o", str(reader.path)],
        "coverage": ["coverage", str(finished_run.parent.parent / "manifest.jsonl"), "--md", str(reader.path)],
        "plan": ["plan", str(finished_run), "--gap", "0.05", "--md", str(reader.path)],
    }[command]
    result = cli(*args)
    data = reader.finish()
    assert result.returncode == 0, result.stderr
    assert data.startswith(b"<!doctype html>" if command == "report" else b"#") or len(data) > 100, data[:80]


def test_import_onto_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "manifest.jsonl")
    source = Path(__file__).resolve().parents[1] / "fixtures" / "vctk" / "VCTK-Corpus"
    clean_exit_2(cli("import", "vctk", str(source), "-o", str(tmp_path / "manifest.jsonl")), "not a regular file")
    assert stat.S_ISFIFO((tmp_path / "manifest.jsonl").lstat().st_mode)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_cache_on_a_non_regular_file_is_one_line_exit_2(finished_run, tmp_path, kind):
    target = tmp_path / "cache"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    config = load_config(finished_run / "config.yaml").model_dump(mode="json")
    config["cache"] = str(target)
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    clean_exit_2(cli("run", str(path)), "must be a regular file")
    assert not (tmp_path / "cache-journal").exists() and not (tmp_path / "cache-wal").exists()


# --- 7. a small YAML that expands into gigabytes ----------------------------------------------------------


def test_yaml_aliases_expanding_past_the_bound_are_one_line_exit_2(tmp_path):
    big = "x" * 1_000_000  # 10,000 aliases of it: 10 GB once written out
    path = tmp_path / "run.yaml"
    path.write_text(f'name: &big "{big}"\ndataset: [{", ".join(["*big"] * 10_000)}]\n', encoding="utf-8")
    clean_exit_2(cli("run", str(path)), str(path), "expands to 10,001,000,", "aliases")


def test_yaml_aliases_within_the_bound_still_load(tmp_path):
    from harness.yamlfile import read_yaml

    path = tmp_path / "cfg.yaml"
    path.write_text("a: &x {k: v}\nb: *x\nc: [*x, *x]\n", encoding="utf-8")
    assert read_yaml(path, "config") == {"a": {"k": "v"}, "b": {"k": "v"}, "c": [{"k": "v"}, {"k": "v"}]}


# --- 8 and 13. coverage reads what validate reads ------------------------------------------------------------

ROW = {"id": "a", "audio": "x.wav", "text": "hello world", "speaker": "s", "accent": "b"}
BAD_MANIFESTS = {
    "null-first-line.jsonl": ("null\n" + json.dumps(ROW) + "\n", ":1: error: expected a JSON object"),
    "deep.jsonl": ('{"id": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested too deeply"),
    "nan-offset.jsonl": (json.dumps({**ROW, "offset": float("nan")}) + "\n", "field 'offset'"),
    "nan-offset.csv": ("id,audio,text,speaker,offset\na,x.wav,hi,s,nan\n", ":2: field 'offset'"),
    "cr-only.jsonl": (json.dumps(ROW) + "\r" + json.dumps({**ROW, "id": "b"}) + "\r", ":1: error: bad JSON"),
    "duplicate-key.jsonl": (json.dumps(ROW)[:-1] + ', "speaker": "t"}\n', 'key "speaker" appears twice'),
}


@pytest.mark.parametrize("name", sorted(BAD_MANIFESTS))
def test_coverage_and_validate_refuse_the_same_manifests(tmp_path, name):
    text, fragment = BAD_MANIFESTS[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    clean_exit_2(cli("coverage", str(path), "--no-audio"), str(path), fragment)
    validated = cli("validate", str(path), "--no-audio")
    assert validated.returncode == 2 and fragment in validated.stderr, validated.stderr


def test_coverage_on_a_latin1_manifest_is_exit_2(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps({**ROW, "text": "café"}, ensure_ascii=False).encode("latin-1") + b"\n")
    clean_exit_2(cli("coverage", str(path), "--no-audio"), "not UTF-8")


def test_coverage_keeps_brackets_inside_text_on_the_fast_path(tmp_path):
    rows = [{**ROW, "id": f"u{i}", "text": "[laughter] {noise} yes"} for i in range(3)]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = cli("coverage", str(path), "--no-audio", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["utterances"] == 3


def test_duplicate_yaml_keys_name_both_lines(tmp_path):
    path = tmp_path / "slices.yaml"
    path.write_text("version: 1\nslices:\n  - by: accent\n    by: dialect\n", encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    clean_exit_2(cli("coverage", str(manifest), "--no-audio", "--slices", str(path)), f"{path}:4", "(also on line 3)")


# --- 10. user mistakes that ended in "internal error" (exit 4) -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["gate", "{run}", "-b", "{run}", "--confidence", "0.9999999999999999"], "less than or equal to 0.999999"),
        (["plan", "{run}", "--gap", "1e-300"], "--gap 1e-300: must lie in [0.0001, 1)"),
        (["plan", "{run}", "--gap", "nan"], "--gap nan"),
        (["plan", "{run}", "--gap", "0.05", "--alpha", "1e-300"], "--alpha 1e-300"),
        (["plan", "{run}", "--gap", "0.05", "--utts-per-speaker", "nan"], "--utts-per-speaker nan"),
        (["discover", "{run}", "--seed", "-1", "--min-speakers", "2"], "--seed -1: must be 0 or more"),
        (["model", "{run}", "--factors", "accent,accent"], "accent named twice"),
        (["gate", "{run}", "-b", "{run}", "-o", "{file}"], "not a folder"),
        (["serve", "-b", "{run}/config.yaml", "--port", "99999"], "--port 99999: a TCP port is 1-65535"),
        (["serve", "-b", "{run}/config.yaml", "--host", "no such host!"], "not an address or a resolvable name"),
    ],
)
def test_cli_option_mistakes_are_one_line_exit_2(finished_run, tmp_path, args, fragment):
    existing = tmp_path / "exists.md"
    existing.write_text("keep me", encoding="utf-8")
    result = cli(*(a.format(run=finished_run, file=existing) for a in args))
    clean_exit_2(result, fragment)
    assert existing.read_text(encoding="utf-8") == "keep me"


@pytest.mark.parametrize(
    ("stats", "backend", "fragment"),
    [
        ({"confidence": 0.9999999999999999}, {}, "'stats.confidence'"),
        ({"model_factors": ["accent", "accent"]}, {}, "accent named twice"),
        ({}, {"mix": {"substitution": float("nan")}}, "mix weights must be finite"),
    ],
)
def test_config_values_that_broke_the_arithmetic_are_exit_2(finished_run, tmp_path, stats, backend, fragment):
    config = load_config(finished_run / "config.yaml").model_dump(mode="json")
    config["stats"].update(stats)
    config["backend"].update(backend)
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML; NaN is written as NaN, read as .nan
    path.write_text(path.read_text().replace("NaN", ".nan"), encoding="utf-8")
    clean_exit_2(cli("run", str(path)), fragment)


def test_a_path_the_system_refuses_is_exit_2_naming_it(finished_run, tmp_path):
    config = load_config(finished_run / "config.yaml").model_dump(mode="json")
    config["dataset"] = "x" * 5000  # found by the fuzz run: ENAMETOOLONG from Path.is_file
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    clean_exit_2(cli("run", str(path)), "xxxxx...", "File name too long")


def test_where_nested_past_the_parser_is_exit_2(tmp_path):
    slices = tmp_path / "slices.yaml"
    slices.write_text(f"version: 1\nslices:\n  - by: accent\n    where: \"{'not ' * 100_000}accent == 'b'\"\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    clean_exit_2(cli("coverage", str(manifest), "--no-audio", "--slices", str(slices)), "at most 100,000")


def test_audio_symlink_loops_and_over_long_paths_are_manifest_errors(tmp_path):
    (tmp_path / "loop1.wav").symlink_to("loop2.wav")
    (tmp_path / "loop2.wav").symlink_to("loop1.wav")
    rows = [{**ROW, "id": "a", "audio": "loop1.wav"}, {**ROW, "id": "b", "audio": "a" * 5000 + ".wav"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = cli("validate", str(manifest))
    assert result.returncode == 2 and "internal error" not in result.stderr, result.stderr
    assert ':1: field \'audio\' error: audio path "loop1.wav" cannot be opened (a symlink loop)' in result.stderr
    assert ":2: field 'audio' error" in result.stderr and "name too long" in result.stderr


# --- 13. a history path that is not a DuckDB file ------------------------------------------------------------


def test_history_on_a_sqlite_file_is_exit_2_and_never_loads_an_extension(tmp_path, monkeypatch):
    import sqlite3

    import duckdb

    db = tmp_path / "history.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE runs (x)")
    seen: list[dict] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **kw: seen.append(kw) or real(*a, **kw))
    clean_exit_2(cli("history", "--db", str(db)), str(db), "a SQLite database")
    assert seen == []  # refused by its header, before DuckDB could reach for its sqlite extension
    fifo = tmp_path / "history.fifo"
    os.mkfifo(fifo)
    clean_exit_2(cli("history", "--db", str(fifo)), "not a regular file")


def test_history_connections_never_autoload_extensions(tmp_path):
    from harness.decide.history import connect

    with connect(tmp_path / "h.duckdb") as con:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() "
                "WHERE name IN ('autoinstall_known_extensions', 'autoload_known_extensions')"
            ).fetchall()
        )
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


# --- 9. effective hangs: bounds with safe defaults --------------------------------------------------------


def test_rate_model_is_skipped_with_a_warning_above_the_level_limit(finished_run, caplog):
    import pandas as pd

    from harness.stats.rate_model import model_for_slices
    from harness.stats.slices import SliceSpec

    table = pd.read_parquet(finished_run / "utterances.parquet").assign(speaker_tag=lambda f: f["id"])
    specs = [SliceSpec(by=("speaker_tag",)), SliceSpec(by=("accent",))]
    skipped = model_for_slices(table, specs, None, 0.95, max_levels=10)  # 24 + 2 values
    assert skipped.error and "over stats.model_max_levels (10)" in skipped.error and not skipped.effects
    assert "rate model skipped" in caplog.text
    assert model_for_slices(table, [SliceSpec(by=("accent",))], None, 0.95, max_levels=10).error is None


def test_coverage_skips_pair_tables_above_max_pair_tags(tmp_path):
    # six independent two-valued tags (every combination once), so no pair table repeats a one-tag table
    rows = [{**ROW, "id": f"u{i}", **{f"t{j}": str((i >> j) & 1) for j in range(6)}} for i in range(64)]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = cli("coverage", str(path), "--no-audio", "--json", "--max-pair-tags", "3")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert all(len(t["by"]) == 1 for t in found["tables"]) and "pair tables are skipped" in result.stderr
    both = json.loads(cli("coverage", str(path), "--no-audio", "--json").stdout)
    # 7 tags make 21 pairs; the 6 with the one-valued accent repeat a one-tag table and are left out
    assert sum(len(t["by"]) == 2 for t in both["tables"]) == 15


def test_conditions_are_bounded_in_the_config(finished_run, tmp_path):
    config = load_config(finished_run / "config.yaml").model_dump(mode="json")
    config["conditions"] = [{"name": f"c{i}", "transforms": [{"gain": {"db": -1}}]} for i in range(101)]
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    clean_exit_2(cli("run", str(path)), "'conditions'", "at most 100")


def test_long_tag_names_are_clipped_in_terminal_tables(tmp_path):
    from rich.console import Console

    from harness.report.format import SHOWN_CHARS, shown

    name = "n" * 100_000
    assert len(shown(f"accent={name} [x]")) < SHOWN_CHARS + 20
    console = Console(width=400, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    rows = [{**ROW, "id": f"u{i}", name: "ab"[i % 2]} for i in range(4)]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    from harness.report.coverage import print_coverage
    from harness.stats.coverage import coverage

    print_coverage(coverage(path, read_durations=False), console)
    text = console.export_text()
    assert "n" * (SHOWN_CHARS - 1) + "…" in text and "n" * (SHOWN_CHARS + 1) not in text


# --- 10. hand-edited run directories and baselines ----------------------------------------------------------


@pytest.mark.parametrize("name", ["metrics.json", "utterances.parquet", "config.yaml", "provenance.json"])
def test_a_run_file_changed_after_scoring_is_refused_by_name(finished_run, tmp_path, name):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    target = run_dir / name
    target.write_bytes(target.read_bytes().replace(b"a", b"b", 1) + (b" " if name.endswith(("json", "yaml")) else b""))
    for args in (["report", str(run_dir)], ["gate", str(run_dir), "-b", str(finished_run), "-o", str(tmp_path)]):
        clean_exit_2(cli(*args), f"{target}: changed since asrfair wrote it")
    (run_dir / "checksums.json").unlink()  # the user's way to accept the edit: read as it is
    assert "changed since" not in cli("report", str(run_dir)).stderr


def test_a_rescore_reseals_the_run(finished_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = json.loads((run_dir / "checksums.json").read_text())
    sealed = {"config.yaml", "transcripts.parquet", "utterances.parquet", "provenance.json", "metrics.json"}
    assert set(before) == sealed
    assert cli("score", str(run_dir), "--aggregate", "speaker-mean", "--in-place").returncode == 0
    assert json.loads((run_dir / "checksums.json").read_text())["metrics.json"] != before["metrics.json"]
    assert cli("report", str(run_dir)).returncode == 0


def test_a_hand_edited_baseline_is_refused(finished_run, tmp_path):
    baseline = tmp_path / "base.json"
    assert cli("baseline", "set", str(finished_run), "-o", str(baseline)).returncode == 0
    data = json.loads(baseline.read_text())
    data["metrics"]["provenance"] = "edited"
    baseline.write_text(json.dumps(data), encoding="utf-8")
    clean_exit_2(cli("gate", str(finished_run), "-b", str(baseline), "-o", str(tmp_path)), "changed since")
    baseline.write_text("[1, 2]", encoding="utf-8")
    clean_exit_2(cli("gate", str(finished_run), "-b", str(baseline), "-o", str(tmp_path)), "not an asrfair baseline")


# --- 13. smaller: CSV line numbers, overlapping groups, truncated FLAC ----------------------------------------


def test_csv_problems_name_the_line_the_row_starts_on(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        'id,audio,text,speaker\n\na,x.wav,hi,s\n\n\nb,x.wav,,s\nc,x.wav,"two\nlines",s\nd,x.wav,"bad"x,s\n',
        encoding="utf-8",
    )
    result = cli("validate", str(path), "--no-audio")
    assert f"{path}:6: field 'text' error" in result.stderr, result.stderr  # b: after two blank lines
    assert f"{path}:9: error: bad CSV in the row starting here" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("groups", "fragment"),
    [
        ({"g": ["a"], "h": ["a", "b"]}, "'a' is in both 'g' and 'h'"),
        ({"a": ["b"]}, "'a' is also a value of accent that the group does not list"),
    ],
)
def test_slice_groups_that_would_merge_values_silently_are_refused(tmp_path, groups, fragment):
    import yaml

    rows = [{**ROW, "id": f"u{i}", "accent": "abc"[i % 3]} for i in range(6)]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    slices = tmp_path / "slices.yaml"
    slices.write_text(yaml.safe_dump({"version": 1, "slices": [{"by": "accent", "groups": {"accent": groups}}]}))
    clean_exit_2(cli("coverage", str(manifest), "--no-audio", "--slices", str(slices)), fragment)


def test_groups_that_rename_without_merging_still_work(tmp_path):
    import yaml

    rows = [{**ROW, "id": f"u{i}", "accent": "abc"[i % 3]} for i in range(6)]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    slices = tmp_path / "slices.yaml"
    groups = {"accent": {"a": ["a", "b"], "other": ["c"]}}
    slices.write_text(yaml.safe_dump({"version": 1, "slices": [{"by": "accent", "groups": groups}]}))
    assert cli("coverage", str(manifest), "--no-audio", "--slices", str(slices)).returncode == 0


def test_a_truncated_flac_fails_validate(tmp_path):
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "full.flac", 0.1 * rng.standard_normal(48_000), 16_000)
    raw = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(raw[: len(raw) // 2])  # an interrupted copy: the header still says 3 s
    rows = [{**ROW, "id": "a", "audio": "cut.flac"}, {**ROW, "id": "b", "audio": "full.flac"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = cli("validate", str(manifest))
    assert result.returncode == 2 and "1 errors" in result.stdout, result.stdout + result.stderr
    assert ":1: field 'audio' error" in result.stderr and "cut.flac is truncated" in result.stderr


def test_write_table_failures_are_one_line_write_errors_and_odd_paths_are_literal(tmp_path):
    """transcripts.parquet is written by DuckDB: its IO errors are write_atomic's one-line error
    (exit 2), not an internal error; a quote or a leading ~ in the path is taken literally."""
    with pytest.raises(InputError, match=r"t\.parquet: cannot write \(.+\); free disk space or write elsewhere"):
        write_table(tmp_path / "missing" / "t.parquet", {"a": [1]}, {"a": "BIGINT"})
    odd = tmp_path / "it's ~" / "t.parquet"
    odd.parent.mkdir()
    write_table(odd, {"n": [1, None, float("nan")], "s": ["x", None, "z"]}, {"n": "BIGINT", "s": "VARCHAR"})
    with duckdb.connect() as con:
        rows = con.execute("SELECT n, s FROM read_parquet(?)", [str(odd)]).fetchall()
    assert rows == [(1, "x"), (None, None), (None, "z")]  # None and NaN counts are NULL, as pandas wrote them


def test_cache_side_files_are_replaced_whole_or_left_alone(tmp_path):
    target = tmp_path / "slice-checks.json"
    replace_quietly(target, '{"a": 1}')
    assert json.loads(target.read_text()) == {"a": 1}
    blocked = tmp_path / "blocked.json"
    blocked.mkdir()  # a folder in the way: nothing raised, nothing left behind
    replace_quietly(blocked, "{}")
    assert blocked.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["blocked.json", "slice-checks.json"]
