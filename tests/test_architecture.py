"""Issue 26: the package's import rules (docs/ARCHITECTURE.md), enforced on every module's imports.

Data flows one way: a stage imports only itself, earlier stages and the shared modules. `report/` renders
results and is imported by no analysis module. Imports under ``if TYPE_CHECKING:`` are type-only and
exempt (no runtime coupling).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"

# Stage order: a module may import modules of its own rank or lower. Shared modules are rank 0.
RANK = {
    "harness": 0,  # the package root: __version__ and lazy library exports
    "errors": 0,
    "yamlfile": 0,
    "registry": 0,
    "redaction": 0,
    "files": 0,
    "data": 1,
    "conditions": 2,
    "backends": 3,
    "transcribe": 4,
    "scoring": 5,
    "stats": 6,  # stats/records.py: the results' records, read by results.py and report/
    "config": 7,  # the run config assembles every stage's options: above them, below what uses them all
    "results": 7,
    "decide": 8,
    "study": 8,  # its statistics and results; study.runner (which runs the pipeline) is orchestration
    "report": 9,
    "api": 10,
    "pipeline": 10,
    "reuse": 10,  # the stored scoring a rerun reuses: keyed on everything the pipeline reads
    "serve": 10,
    "cli": 11,
    "__main__": 12,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Modules ranked apart from their folder: the study's runner drives the pipeline.
MODULE_STAGE = {"harness.study.runner": "pipeline"}


def _stage(module: str) -> str:
    if module in MODULE_STAGE:
        return MODULE_STAGE[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _type_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for inner in ast.walk(child):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        lines.add(inner.lineno)
    return lines


def _imports() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exempt = _type_only(tree)
        module = _module_name(path)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in exempt:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("harness"):
                targets = [node.module]
                if node.module == "harness":  # `from harness import redaction` names a module
                    targets = [f"harness.{alias.name}" for alias in node.names if alias.name != "__version__"]
                found += [(module, target, node.lineno) for target in targets]
            elif isinstance(node, ast.Import):
                found += [(module, a.name, node.lineno) for a in node.names if a.name.startswith("harness")]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                found.append((module, "<relative>", node.lineno))
    return found


def test_every_stage_has_a_rank():
    stages = {_stage(_module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert stages <= set(RANK), f"add {sorted(stages - set(RANK))} to RANK and to docs/ARCHITECTURE.md"


def test_data_flows_one_way():
    wrong = [
        f"{module} (line {line}) imports {target}"
        for module, target, line in _imports()
        if target == "<relative>" or RANK[_stage(target)] > RANK[_stage(module)]
    ]
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(wrong)


@pytest.mark.parametrize("forbidden", ["harness.report", "harness.cli"])
def test_renderers_and_commands_are_leaves(forbidden):
    allowed = {"report": {"harness.report"}, "cli": {"harness.report", "harness.cli"}}
    wrong = [
        f"{module} (line {line}) imports {target}"
        for module, target, line in _imports()
        if target.startswith(forbidden)
        and forbidden not in allowed.get(_stage(module), set())
        and _stage(module) not in {"pipeline", "api", "serve", "__main__"}
    ]
    assert not wrong, "\n".join(wrong)


# A run's renderers and the function each is entered by: they read the typed results (harness/results.py).
RUN_RENDERERS = {
    "terminal": "print_summary",
    "markdown": "render_markdown",
    "html": "render_html",
    "summary": "plain_summary",
}


@pytest.mark.parametrize("module", sorted(RUN_RENDERERS))
def test_run_renderers_take_the_typed_results(module):
    """A run is rendered from ``RunResult`` (a saved one read back by ``RunResult.from_dict``), never
    from the metrics.json mapping: no renderer function takes ``metrics``."""
    tree = ast.parse((PACKAGE / "report" / f"{module}.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    first = functions[RUN_RENDERERS[module]].args.args[0]
    assert first.annotation is not None and ast.unparse(first.annotation) == "RunResult"
    takes_metrics = [
        f.name for f in functions.values() if "metrics" in {a.arg for a in f.args.args + f.args.kwonlyargs}
    ]
    assert not takes_metrics, f"report/{module}.py: {takes_metrics} take the metrics mapping"


# The records a run's results hold, apart from the code that computes them: they import the standard
# library and each other only, so reading and rendering a saved or reused run (a warm rerun's summary,
# issue 28) loads no numerical library for them (tests/test_results.py checks the modules loaded).
# transcribe/throughput.py imports numpy inside throughput().
RECORD_MODULES = (
    "harness.stats.records",
    "harness.stats.options",
    "harness.scoring.options",
    "harness.transcribe.throughput",
)


@pytest.mark.parametrize("module", RECORD_MODULES)
def test_result_records_import_only_the_standard_library(module):
    path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
    imported = []
    # Module-level statements only: an import in a function runs when it is called, one under
    # `if TYPE_CHECKING:` never.
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    stdlib = sys.stdlib_module_names
    wrong = [name for name in imported if name not in RECORD_MODULES and name.split(".")[0] not in stdlib]
    assert not wrong, f"{module} imports {wrong}: keep the records free of numpy, pandas, scipy and statsmodels"


def test_the_rules_catch_a_backwards_import(tmp_path, monkeypatch):
    """The checker itself: a stats module importing the report is reported."""
    stats = tmp_path / "harness" / "stats"
    stats.mkdir(parents=True)
    (stats / "bad.py").write_text("from harness.report.format import pct\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "harness")
    with pytest.raises(AssertionError, match=r"harness\.stats\.bad \(line 1\) imports harness\.report\.format"):
        test_data_flows_one_way()
