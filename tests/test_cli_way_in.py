"""The way in (issue 25): --version, --help panels and words, and errors that say the fix.

Every error is checked as the user meets it: one line on stderr, exit 2, naming the file and key and
what to write instead. The commands run in-process through typer's runner (the same `app` the
``asrfair`` script runs); tests/test_cli.py covers the subprocess path.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Literal

import pytest
import yaml
from conftest import write_config
from typer.testing import CliRunner

from harness import __version__
from harness.cli import PANELS, app
from harness.cli.common import type_name
from harness.config import load_config
from harness.errors import InputError, Interrupted
from harness.pipeline import prepare, run

RUNNER = CliRunner()


def asrfair(*args: str):
    return RUNNER.invoke(app, list(args), prog_name="asrfair")


def one_line_error(result, *fragments: str) -> str:
    """The error line of a failed command: exit 2, one line, no traceback, holding each fragment."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def manifest(make_manifest):
    return make_manifest(
        [{"id": f"u{i}", "text": "one two three", "speaker": f"s{i % 3}", "accent": "ab"[i % 2]} for i in range(6)]
    )


# --- --version and --help --------------------------------------------------------------------


def test_version_prints_the_package_version():
    result = asrfair("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"asrfair {__version__}"


def test_help_groups_commands_into_panels_start_here_first():
    out = asrfair("--help").stdout
    positions = [out.index(f"─ {title} ") for title in PANELS]
    assert positions == sorted(positions), "panels out of order"
    assert "New here?" in out and "'Start here'" in out
    start = out[positions[0] : positions[1]]
    assert all(re.search(rf"│ {name}\s", start) for name in PANELS["Start here"])


def test_every_command_is_in_one_panel():
    registered = {info.name for info in app.registered_commands} | {g.name for g in app.registered_groups}
    listed = [name for names in PANELS.values() for name in names]
    assert sorted(listed) == sorted(registered)


def _commands() -> list[list[str]]:
    found = [[], *([info.name] for info in app.registered_commands)]
    for group in app.registered_groups:
        found += [[group.name], *([group.name, info.name] for info in group.typer_instance.registered_commands)]
    return found


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c) or "asrfair")
def test_help_shows_types_as_words(command):
    result = asrfair(*command, "--help")
    assert result.exit_code == 0, result.stderr
    # typer's own rendering would read <bool>, <path>, <list[str]>, <int range>, {CONFIG}
    assert not re.search(r"<(bool|str|int|float|path|file|list\[)[^>]*>|\{[A-Z_]+\}", result.stdout), result.stdout
    assert "--help" in result.stdout


def test_run_help_names_its_argument_and_types():
    out = asrfair("run", "--help").stdout
    assert "asrfair run [OPTIONS] CONFIG" in out
    assert re.search(r"CONFIG\s+PATH", out) and re.search(r"--workers\s+INTEGER", out)


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (int, "integer"),
        (float | None, "number or none"),
        (Literal["cpu", "cuda", "auto"], "cpu | cuda | auto"),
        (list[str], "list of text"),
        (dict[str, float], "mapping of text to number"),
        (Path, "path"),
        (bool, "yes/no"),
    ],
)
def test_type_names_read_as_words(annotation, words):
    assert type_name(annotation) == words


def test_backends_table_types_are_words():
    result = asrfair("backends", "--json")
    assert result.exit_code == 0
    types = {option["type"] for backend in json.loads(result.stdout) for option in backend["options"].values()}
    assert "number or none" in types and not any(re.search(r"Literal|typing|<class|\[", t) for t in types), types


# --- unknown keys: the nearest valid key, never a silent alias ----------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        ({"normaliser": "basic"}, ["run.yaml: 'normaliser': unknown key; did you mean 'normalizer'?"]),
        ({"stats": {"min_speaker": 3}}, ["'stats.min_speaker': unknown key; did you mean 'min_speakers'?"]),
        ({"gate": {"wer_increse": 0.01}}, ["'gate.wer_increse': unknown key; did you mean 'wer_increase'?"]),
        ({"runaway": {"loop_repeat": 3}}, ["'runaway.loop_repeat': unknown key; did you mean 'loop_repeats'?"]),
        ({"execute": {"worker": 3}}, ["'execute.worker': unknown key; did you mean 'workers'?"]),
        (
            {"conditions": [{"name": "n", "transforms": [{"type": "noise", "snr_db": 5, "colur": "pink"}]}]},
            ["'conditions[0].transforms[0].noise.colur': unknown key; did you mean 'color'?"],
        ),
        (
            {"conditions": [{"name": "n", "transform": []}]},
            ["'conditions[0].transform': unknown key; did you mean 'transforms'?"],
        ),
        (
            {"slices": [{"by": ["accent"], "refrence": "a"}]},
            ["'slices[0].refrence': unknown key; did you mean 'reference'?"],
        ),
        ({"stats": {"x[1]": 2}}, ["'stats.x[1]': unknown key; valid keys here: min_speakers, min_words"]),
        (  # nothing close: the keys allowed there, and no noise from the 'slices: a path' reading
            {"slices": [{"by": ["accent"], "min_speaker": 3}]},
            ["'slices[0].min_speaker': unknown key; valid keys here: by, name, where, groups, bins, reference"],
        ),
    ],
)
def test_config_unknown_key_suggests_the_nearest(tmp_path, manifest, extra, fragments):
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, **extra)
    line = one_line_error(asrfair("run", str(config)), *fragments)
    assert "lax-or-strict" not in line and "not a valid path" not in line


def test_backend_option_typo_suggests_the_option(tmp_path, manifest):
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub", "default_rte": 0.1})
    one_line_error(
        asrfair("run", str(config)), "backend 'stub'", "'default_rte': unknown key; did you mean 'default_rate'?"
    )


def test_slice_file_typo_suggests_the_key(tmp_path, manifest):
    slices = tmp_path / "slices.yaml"
    slices.write_text(yaml.safe_dump({"slices": [{"by": ["accent"], "grups": {}}]}))
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, slices=str(slices))
    one_line_error(asrfair("run", str(config)), f"{slices}: 'slices[0].grups': unknown key; did you mean 'groups'?")


def test_normaliser_file_typo_suggests_the_key(tmp_path, manifest):
    normaliser = tmp_path / "clinic.yaml"
    normaliser.write_text(yaml.safe_dump({"name": "clinic", "version": 1, "step": ["basic"]}))
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, normalizer=str(normaliser))
    one_line_error(asrfair("run", str(config)), f"{normaliser}: ", "'step': unknown key; did you mean 'steps'?")


def test_tag_map_typo_suggests_the_key(tmp_path):
    from harness.data.importers.tagmap import read_tag_map

    path = tmp_path / "map.yaml"
    path.write_text("accent: {map: {us: [x]}, unmaped: keep}\n")
    with pytest.raises(InputError, match=re.escape(f"{path}: 'accent.unmaped': unknown key; did you mean 'unmapped'?")):
        read_tag_map(path)


# --- paths, interrupted runs, the first gate ---------------------------------------------------


def test_missing_manifest_says_paths_are_relative_to_the_config(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "run.yaml").write_text("name: x\ndataset: data/manifest.jsonl\nbackend: {name: stub}\n")
    one_line_error(
        asrfair("run", str(folder / "run.yaml")),
        f"{folder / 'run.yaml'}: 'dataset': data/manifest.jsonl not found",
        f"(looked for {folder / 'data' / 'manifest.jsonl'})",
        "paths are relative to the config file",
    )


def test_missing_slice_file_says_paths_are_relative_to_the_config(tmp_path, manifest):
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, slices="slices/mine.yaml")
    one_line_error(
        asrfair("run", str(config)),
        "'slices': slices/mine.yaml not found",
        f"(looked for {tmp_path / 'slices' / 'mine.yaml'}); paths are relative to the config file",
    )


@pytest.fixture
def interrupted(tmp_path, manifest) -> Path:
    """A run stopped while transcribing, as Ctrl-C leaves it: config.yaml, no transcripts, no metrics."""
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"})
    stop = threading.Event()
    stop.set()  # as if Ctrl-C came during the first batch: that batch finishes and is cached
    with pytest.raises(Interrupted):
        run(prepare(load_config(config)), stop=stop)
    (root,) = (tmp_path / "runs").glob("test-*")
    assert (root / "config.yaml").is_file() and not (root / "metrics.json").exists()
    return root


@pytest.mark.parametrize("command", [["report"], ["score"], ["discover"], ["plan", "--gap", "0.02"], ["model"]])
def test_interrupted_run_directory_says_rerun_to_resume(interrupted, command):
    line = one_line_error(
        asrfair(command[0], str(interrupted), *command[1:]),
        f"{interrupted}: an interrupted run (no metrics.json yet)",
        "rerun `asrfair run CONFIG`",
        f"(a copy: {interrupted / 'config.yaml'}) to resume",
    )
    assert "made by 'asrfair run'" not in line


def test_gate_before_any_baseline_says_how_to_make_one(interrupted, tmp_path):
    missing = tmp_path / "baselines" / "main.json"
    one_line_error(
        asrfair("gate", str(interrupted), "--baseline", str(missing)),
        f"--baseline {missing}: no baseline yet",
        f"asrfair baseline set RUN -o {missing}",
    )
