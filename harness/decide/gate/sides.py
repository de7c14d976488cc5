"""The gate's two sides: a finished run directory or a saved baseline, loaded and verified."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness.config import RunConfig
from harness.data.audio import file_sha256
from harness.decide.integrity import check_sealed
from harness.errors import InputError, format_validation_error
from harness.files import check_metrics_schema, open_run_dir, write_atomic, write_json
from harness.yamlfile import read_yaml

BASELINE_SCHEMA = "asrfair.baseline/1"


@dataclass(frozen=True)
class RunSide:
    """One side of a comparison: a finished run directory or a saved baseline."""

    label: str
    source: Path
    table: pd.DataFrame  # scored utterances (utterances.parquet)
    metrics: dict[str, Any]
    config: RunConfig
    run_id: str  # the run directory's name, also for a saved baseline

    @property
    def provenance(self) -> dict[str, Any]:
        return self.metrics.get("provenance", {})

    @property
    def failure_rate(self) -> float:
        return float((self.table["status"] != "ok").mean()) if len(self.table) else 0.0

    def describe(self) -> dict[str, Any]:
        backend = self.provenance.get("backend", {})
        normalizer, normalizer_sha256, normalizer_library = scoring_normalizer(self.provenance)
        return {
            "source": str(self.source),
            "run": self.provenance.get("run_name"),
            "run_id": self.run_id,
            "backend": backend.get("name"),
            "fingerprint": backend.get("id"),
            "manifest_sha256": self.provenance.get("manifest", {}).get("sha256"),
            "normalizer": normalizer,
            "normalizer_sha256": normalizer_sha256,
            "normalizer_library": normalizer_library,
        }


_LEGACY_WHISPER_STAMP = re.compile(r"^whisper-english@(\d+(?:\.\d+)+)$")


def scoring_normalizer(provenance: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(stamp, a YAML normaliser's sha256, the library behind a preset) of a run's scoring. Runs
    scored before presets had versions of their own were stamped with whisper-normalizer's
    version (``whisper-english@0.1.15``): the rules of ``whisper-english@1``, read as such."""
    stamp = provenance.get("normalizer")
    definition = provenance.get("normalizer_definition") or {}
    legacy = _LEGACY_WHISPER_STAMP.match(stamp or "")
    if legacy and not definition:
        return "whisper-english@1", None, f"whisper-normalizer {legacy[1]}"
    return stamp, definition.get("sha256"), definition.get("library")


def load_side(path: Path, label: str) -> RunSide:
    """A run directory, or a baseline JSON written by :func:`save_baseline`."""
    if path.is_dir():
        paths = open_run_dir(path)
        check_sealed(path)
        if not paths.utterances.is_file() or not paths.metrics.is_file():
            raise InputError(f"{path}: the run did not finish scoring (no metrics.json); {paths.completion_hint()}")
        table, metrics, config = _read_table(paths.utterances), _read_json(paths.metrics), _read_config(paths.config)
        check_metrics_schema(metrics, paths.metrics, provenance_only=True)  # the gate reads its provenance only
        return RunSide(label, path, table, metrics, config, path.resolve().name)
    if path.suffix == ".json" and path.is_file():
        saved = _read_json(path)
        if not isinstance(saved, dict) or saved.get("schema") != BASELINE_SCHEMA:
            schema = saved.get("schema") if isinstance(saved, dict) else None
            raise InputError(
                f"{path}: not an asrfair baseline (schema {schema!r}); make one:  'asrfair baseline set'"
            )
        recorded_body = saved.pop("sha256", None)  # baselines set before it existed have none
        if recorded_body is not None and recorded_body != _body_sha256(saved):
            raise InputError(f"{path}: changed since 'asrfair baseline set' wrote it (sha256 differs); set it again")
        if not isinstance(saved.get("utterances"), str) or not isinstance(saved.get("metrics"), dict):
            raise InputError(f"{path}: 'utterances' or 'metrics' missing or of the wrong type; set the baseline again")
        table_path = path.parent / saved["utterances"]
        recorded = saved.get("utterances_sha256")  # baselines set before it existed have none
        if recorded and table_path.is_file() and file_sha256(table_path) != recorded:
            raise InputError(
                f"{table_path}: not the table {path.name} was saved with (an interrupted 'asrfair baseline set', "
                "or one file of the pair edited); set the baseline again"
            )
        try:
            config = RunConfig.model_validate(saved["config"])
        except ValidationError as exc:
            raise InputError(f"{path}: 'config': {format_validation_error(exc, model=RunConfig)}") from None
        return RunSide(label, path, _read_table(table_path), saved["metrics"], config, str(saved.get("run_id")))
    raise InputError(f"{path}: not found, or neither a run directory nor a baseline .json")


def save_baseline(run_dir: Path, out: Path) -> Path:
    """Write ``out`` (JSON: fingerprints, normaliser, config, metrics) and its utterance table beside it."""
    side = load_side(run_dir, "baseline")
    if out.suffix != ".json":
        raise InputError(f"-o {out}: a baseline is a .json file (its utterance table is written beside it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    table_path = out.with_suffix(".utterances.parquet")
    source = open_run_dir(run_dir).utterances
    # the table first, the JSON naming its hash last: a kill between leaves a pair load_side refuses
    write_atomic(table_path, lambda tmp: shutil.copyfile(source, tmp))
    body = {
        "schema": BASELINE_SCHEMA,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "from_run": str(run_dir.resolve()),
        **{k: v for k, v in side.describe().items() if k != "source"},
        "utterances": table_path.name,
        "utterances_sha256": file_sha256(table_path),
        "config": side.config.model_dump(mode="json"),
        "metrics": side.metrics,
    }
    write_json(out, {**body, "sha256": _body_sha256(body)})
    return out


def _body_sha256(body: dict[str, Any]) -> str:
    """Checksum of a baseline's JSON without its own ``sha256`` key: a hand edit is refused on loading."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc})") from None


def _read_config(path: Path) -> RunConfig:
    try:
        return RunConfig.model_validate(read_yaml(path, "run config"))
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, model=RunConfig)}") from None
