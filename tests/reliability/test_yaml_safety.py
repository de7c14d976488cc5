"""No input file can run code: every YAML reader is safe, and ``where:`` is parsed, never evaluated.

Each reader gets a document whose tags would run ``touch PWNED`` under an unsafe loader; each must
refuse it with a one-line error naming the file, and the file must never appear.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO

from harness.config import load_config
from harness.data.manifest import read_vocabulary
from harness.decide.findings import read_finding
from harness.errors import InputError
from harness.scoring.normalisers import load_normalizer_file
from harness.serve import load_backend
from harness.stats.slices import load_slices
from harness.stats.where import WhereError, parse_where

PAYLOADS = [
    "!!python/object/apply:os.system ['touch {pwned}']",
    "!!python/object/new:subprocess.Popen [['touch', '{pwned}']]",
    "!!python/name:os.system",
    "!!python/module:os",
]
READERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "run config": ("name: x\ndataset: {payload}\n", load_config),
    "slice file": ("version: 1\nslices:\n  - by: accent\n    where: {payload}\n", load_slices),
    "normaliser": ("name: mine\nversion: 1\nsteps: [{payload}]\n", load_normalizer_file),
    "dataset card": ("tags: {{accent: {{values: [{payload}]}}}}\n", lambda p: read_vocabulary(p)),
    "finding": ("schema: x\nslice: {payload}\n", read_finding),
    "serve backend": ("backend: {{name: {payload}}}\n", load_backend),
}


@pytest.mark.parametrize("payload", PAYLOADS, ids=["apply", "new", "name", "module"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_python_tags_are_refused_everywhere(tmp_path, reader, payload):
    pwned = tmp_path / "PWNED"
    template, read = READERS[reader]
    path = tmp_path / ("dataset.yaml" if reader == "dataset card" else "input.yaml")
    path.write_text(template.format(payload=payload.format(pwned=pwned)), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert not pwned.exists()


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('touch PWNED')",
        "accent.__class__",
        "(lambda: 1)()",
        "f'{accent}'",
        "accent == 'a' or open('PWNED', 'w')",
        "[x for x in ().__class__.__base__.__subclasses__()]",
        "accent in {'a'}",
        "accent == 'a' if True else 0",
        "accent + 'a' == 'b'",
        "accent[0] == 'a'",
    ],
)
def test_where_runs_no_code(tmp_path, monkeypatch, expression):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WhereError):
        parse_where(expression)
    slices = tmp_path / "slices.yaml"
    quoted = json.dumps(expression)  # a JSON string is a YAML string
    slices.write_text(f"version: 1\nslices:\n  - by: accent\n    where: {quoted}\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_slices(slices)
    assert str(caught.value).startswith(f"{slices}: 'slices[0].where': "), caught.value
    assert not (tmp_path / "PWNED").exists()


def test_one_yaml_reader_for_the_whole_package():
    """Only harness/yamlfile.py touches PyYAML's loaders, so the safe loader cannot be bypassed."""
    loaders = {"load", "load_all", "unsafe_load", "full_load", "Loader", "UnsafeLoader", "FullLoader"}
    offenders = [
        f"{module.relative_to(REPO)}:{node.lineno} yaml.{node.attr}"
        for module in (REPO / "harness").rglob("*.py")
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "yaml"
        and node.attr in loaders
    ]
    assert offenders and all(o.startswith("harness/yamlfile.py:") for o in offenders), offenders
