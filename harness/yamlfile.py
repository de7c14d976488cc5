"""Reading YAML inputs (run configs, slice files, dataset cards) with file-located errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError


def read_yaml(path: Path, what: str) -> Any:
    """``yaml.safe_load`` of ``path``; a missing file or bad YAML is an InputError naming file:line."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: bad YAML: {getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason}); re-save as UTF-8") from None
