"""Text normalisers applied alike to reference and hypothesis before alignment.

Raw transcripts are stored untouched; normalisation happens at scoring time, and the
normaliser's name and version are stamped into every result, because scoring rules alone
can move WER by several points.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from harness.errors import InputError

_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalizer:
    name: str
    version: str
    apply: Callable[[str], str]

    @property
    def stamp(self) -> str:
        return f"{self.name}@{self.version}"

    def __call__(self, text: str) -> str:
        return self.apply(text)


def basic(text: str) -> str:
    """Lower-case, drop punctuation (keeping in-word apostrophes), collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def identity(text: str) -> str:
    """Whitespace is collapsed so that alignment splits words the same way."""
    return _SPACES.sub(" ", text).strip()


def _whisper_english() -> Normalizer:
    from whisper_normalizer.english import EnglishTextNormalizer

    try:
        pkg_version = version("whisper-normalizer")
    except PackageNotFoundError:  # vendored or editable copies carry no metadata
        pkg_version = "unknown"
    normalise = EnglishTextNormalizer()
    return Normalizer("whisper-english", pkg_version, lambda text: identity(normalise(text)))


NORMALIZERS: dict[str, Callable[[], Normalizer]] = {
    "whisper-english": _whisper_english,
    "basic": lambda: Normalizer("basic", "1", basic),
    "none": lambda: Normalizer("none", "1", identity),
}


def get_normalizer(name: str) -> Normalizer:
    try:
        factory = NORMALIZERS[name]
    except KeyError:
        raise InputError(f"unknown normalizer '{name}'; choose one of: {', '.join(NORMALIZERS)}") from None
    return factory()
