"""Caveats from the dataset card (``dataset.yaml`` beside the manifest) that every output must carry.

A number measured on synthetic speech, or on audio whose licence forbids redistribution, means
something different from the same number on licensed recordings of real speakers; the card says
which, so the run keeps what it says (in ``provenance.dataset_card``, read when the run is made)
and every report repeats it. A card is optional; its absence is itself a caveat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.data.manifest import DATASET_CARD
from harness.yamlfile import read_yaml


@dataclass(frozen=True)
class Caveat:
    kind: str  # synthetic | licence | attribution | demographics | note | no card
    text: str


def card_provenance(manifest: Path) -> dict[str, Any]:
    """``{path, caveats}`` for the card beside ``manifest``; ``path`` is null without one."""
    card = manifest.parent / DATASET_CARD
    if not card.is_file():
        return {"path": None, "caveats": [asdict(missing_card())]}
    return {"path": str(card), "caveats": [asdict(c) for c in card_caveats(card)]}


def missing_card() -> Caveat:
    return Caveat(
        "no card",
        f"no {DATASET_CARD} beside the manifest: the source, licence and whether the speech is real or "
        "synthetic are not recorded with these numbers",
    )


def card_caveats(card: Path) -> list[Caveat]:
    """The card's caveats: ``synthetic: true`` (with the card's description, which says what was
    synthesised), the licence and attribution, ``demographics``, and any ``caveats:`` list."""
    data = read_yaml(card, "dataset card") or {}
    if not isinstance(data, dict):
        return [Caveat("note", f"{card}: not a mapping of fields, so it records no caveats")]
    out = []
    if data.get("synthetic") is True:
        description = _flat(data.get("description"))
        out.append(
            Caveat(
                "synthetic",
                "SYNTHETIC speech: these numbers describe how the recogniser copes with generated voices, not "
                "with real speakers" + (f". The card says: {description}" if description else ""),
            )
        )
    licence = data.get("licence", data.get("license"))
    if licence not in (None, ""):
        out.append(Caveat("licence", f"licence: {_flat(licence)}"))
    if data.get("attribution") not in (None, ""):
        out.append(Caveat("attribution", f"attribution: {_flat(data['attribution'])}"))
    if data.get("demographics") not in (None, ""):
        out.append(Caveat("demographics", f"demographics: {_flat(data['demographics'])}"))
    notes = data.get("caveats")
    for note in notes if isinstance(notes, list) else [notes] if notes else []:
        out.append(Caveat("note", _flat(note)))
    return out


def _flat(value: Any) -> str:
    """A card value as one line: mappings as ``key: value; ...``, lists joined, whitespace folded."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flat(v).rstrip('.')}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value)
    return " ".join(str(value).split()) if value is not None else ""
