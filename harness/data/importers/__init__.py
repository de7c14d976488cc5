"""Corpus importers: ``asrfair import FORMAT SOURCE_DIR -o manifest.jsonl``.

One module per corpus format, found by name like backends: the built-ins below plus any
package's ``asrfair.importers`` entry points. :func:`harness.data.importers.writer.import_corpus`
streams an importer's rows into a manifest.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from harness.data.importers.base import Importer, ImporterOptions, Record, Reject, TagInfo
from harness.errors import InputError, format_validation_error
from harness.registry import PluginRegistry

ENTRY_POINT_GROUP = "asrfair.importers"
BUILTIN_IMPORTERS: dict[str, str] = {
    "commonvoice": "harness.data.importers.commonvoice:CommonVoiceImporter",
    "vctk": "harness.data.importers.vctk:VCTKImporter",
    "l2arctic": "harness.data.importers.l2arctic:L2ArcticImporter",
    "speech-accent-archive": "harness.data.importers.speech_accent_archive:SpeechAccentArchiveImporter",
    "edacc": "harness.data.importers.edacc:EdAccImporter",
    "coraal": "harness.data.importers.coraal:CoraalImporter",
    "kaldi": "harness.data.importers.kaldi:KaldiImporter",
    "lhotse": "harness.data.importers.lhotse:LhotseImporter",
    "hf": "harness.data.importers.huggingface:HuggingFaceImporter",
}

__all__ = ["Importer", "ImporterOptions", "ImporterRegistry", "Record", "Reject", "TagInfo", "parse_options"]


class ImporterRegistry(PluginRegistry[Importer]):
    kind = "import format"
    base = Importer
    error = InputError

    @classmethod
    def default(cls) -> ImporterRegistry:
        """Built-ins plus third-party importers from the ``asrfair.importers`` entry points."""
        return cls.with_entry_points(BUILTIN_IMPORTERS, ENTRY_POINT_GROUP)  # type: ignore[return-value]

    def create(self, name: str, source: Path, options: dict[str, str], split: str | None) -> Importer:
        cls = self.load(name)
        try:
            parsed = cls.Options.model_validate(options)
        except ValidationError as exc:
            raise InputError(f"import {name}: -O {format_validation_error(exc, model=cls.Options)}") from None
        return cls(source, parsed, split)


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``-O key=value`` pairs (repeatable) as a mapping; each importer's model converts the values."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"-O {pair}: expected key=value, e.g. -O mics=mic1,mic2")
        options[key.strip()] = value.strip()
    return options
