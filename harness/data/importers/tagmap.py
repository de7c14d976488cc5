"""``--map tags.yaml``: raw tag values to canonical labels (many free-text accents → a few).

::

    accent:
      map:
        us: [United States English, american, "US English"]
        england: [England English, "English (England)"]
      unmapped: keep        # keep (default) | omit | any other text: the label for the rest

Matching ignores case, spacing and punctuation (both sides pass through :func:`label`), so a
map written from a listing of raw values matches however an importer spelled them. Values a map
does not name are counted per tag and listed in the import summary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.data.importers.base import label
from harness.errors import InputError, unknown_key
from harness.yamlfile import read_yaml

KEEP, OMIT = "keep", "omit"


@dataclass(frozen=True)
class TagRule:
    canonical: Mapping[str, str]  # label(raw) → canonical
    unmapped: str  # KEEP, OMIT or the label for every value the map does not name


@dataclass(frozen=True)
class TagMap:
    path: Path
    sha256: str
    rules: Mapping[str, TagRule]

    def apply(self, tags: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """Mapped tags, and the (tag, raw value) pairs no rule named."""
        out: dict[str, str] = {}
        unmapped: list[tuple[str, str]] = []
        for tag, value in tags.items():
            rule = self.rules.get(tag)
            if rule is None:
                out[tag] = value
                continue
            canonical = rule.canonical.get(label(value))
            if canonical is not None:
                out[tag] = canonical
                continue
            unmapped.append((tag, value))
            if rule.unmapped == KEEP:
                out[tag] = value
            elif rule.unmapped != OMIT:
                out[tag] = rule.unmapped
        return out, unmapped


def read_tag_map(path: Path) -> TagMap:
    data = read_yaml(path, "tag map")
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected tag names mapping to {{map: {{canonical: [raw, ...]}}, unmapped: keep}}")
    rules = {str(tag): _rule(path, str(tag), spec) for tag, spec in data.items()}
    return TagMap(path, hashlib.sha256(path.read_bytes()).hexdigest(), rules)


def _rule(path: Path, tag: str, spec: object) -> TagRule:
    if not isinstance(spec, dict) or not isinstance(spec.get("map"), dict):
        raise InputError(f"{path}: '{tag}': expected 'map: {{canonical: [raw values]}}'")
    unknown = sorted(set(spec) - {"map", "unmapped"})
    if unknown:
        raise InputError(f"{path}: '{tag}.{unknown[0]}': {unknown_key(str(unknown[0]), ['map', 'unmapped'])}")
    unmapped = spec.get("unmapped", KEEP)
    if not isinstance(unmapped, str) or not unmapped.strip():
        raise InputError(f"{path}: '{tag}.unmapped': expected keep, omit or a label such as 'other'")
    canonical: dict[str, str] = {}
    for target, raws in spec["map"].items():
        if not isinstance(target, str) or not target.strip():
            raise InputError(f"{path}: '{tag}.map': canonical labels must be text, got {target!r}")
        for raw in [raws] if isinstance(raws, str) else raws if isinstance(raws, list) else [None]:
            if not isinstance(raw, str):
                raise InputError(f"{path}: '{tag}.map.{target}': expected raw values as text or a list of text")
            key = label(raw)
            if canonical.get(key, target) != target:
                raise InputError(
                    f"{path}: '{tag}.map': '{raw}' is listed under both '{canonical[key]}' and '{target}'; keep one"
                )
            canonical[key] = target
        canonical.setdefault(label(target), target)  # an already canonical value maps to itself
    return TagRule(canonical, unmapped.strip())
