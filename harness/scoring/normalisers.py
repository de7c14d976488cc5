"""Text normalisers: named, versioned presets applied alike to reference and hypothesis at scoring time.

Raw transcripts are stored untouched; the normaliser is applied when a run is scored, and its
``name@version`` (with the definition of a user's own) is stamped into every result, because
scoring rules alone can move WER by several points, and can move it for one dialect more than
for another. docs/normalisation.md lists every rule of every preset.

A normaliser is chosen by a spec string:
- ``whisper-english``, ``whisper-english@1``: a built-in preset (no version: the newest);
- a name registered by another package under the ``asrfair.normalizers`` entry-point group;
- ``path/to/mine.yaml``: a user's own, a list of jiwer-style steps (see :func:`load_normalizer_file`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jiwer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import InputError, format_validation_error
from harness.registry import PluginRegistry
from harness.yamlfile import read_yaml

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "asrfair.normalizers"
FILE_SUFFIXES = (".yaml", ".yml")

_SPACES = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")
_DIGIT_COMMA = re.compile(r"(\d),(\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.(?![0-9])")
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_SYMBOL_NOT_BEFORE_DIGIT = re.compile(r"[.$¢€£](?![0-9])")
_PERCENT_NOT_AFTER_DIGIT = re.compile(r"(?<![0-9])%")
_NUMERIC_SYMBOLS = frozenset(".%$¢€£")
_NAME = r"^[a-z0-9][a-z0-9._-]*$"


@dataclass(frozen=True)
class Normalizer:
    """A text normaliser and what identifies it in results.

    ``apply`` may leave runs of whitespace; calling the normaliser always collapses them, so
    alignment splits words the same way whatever the rules.
    """

    name: str
    version: str
    apply: Callable[[str], str]
    description: str = ""
    source: str = "built-in"  # built-in | entry point <module:attr> | the YAML file's path
    library: str | None = None  # the implementation behind a preset, e.g. whisper-normalizer 0.1.15
    definition: dict[str, Any] | None = None  # a YAML normaliser's name, version and steps

    @property
    def stamp(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def sha256(self) -> str | None:
        """Digest of a user's definition (its description aside): two files with one name@version but
        other steps differ."""
        if self.definition is None:
            return None
        rules = {k: v for k, v in self.definition.items() if k != "description"}
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        return {
            "stamp": self.stamp,
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "library": self.library,
            "sha256": self.sha256,
            "definition": self.definition,
        }

    def __call__(self, text: str) -> str:
        return _SPACES.sub(" ", self.apply(text)).strip()


# ---------------------------------------------------------------------------------------------- presets


def basic(text: str) -> str:
    """Fold Unicode compatibility forms and case, drop punctuation (keeping in-word apostrophes)."""
    return _PUNCTUATION.sub(" ", unicodedata.normalize("NFKC", text).lower())


def identity(text: str) -> str:
    return text


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # vendored or editable copies carry no metadata
        return "unknown"


def _whisper_english() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def _dialect_preserving() -> Callable[[str], str]:
    """Case, punctuation, whitespace and number formats folded; every word form left as written.

    Numbers use the very rules of ``whisper-english`` (its number normaliser), so that the two
    presets differ only in word forms: a slice whose WER moves between them moves because of
    contractions, dialect forms, spellings or fillers, not digits.
    """
    from whisper_normalizer.english import EnglishNumberNormalizer

    numbers = EnglishNumberNormalizer()

    def apply(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).lower()
        text = _DIGIT_COMMA.sub(r"\1\2", text)
        text = _PERIOD_NOT_DECIMAL.sub(" ", text)
        text = "".join(
            " " if unicodedata.category(c)[0] in "SP" and c != "'" and c not in _NUMERIC_SYMBOLS else c for c in text
        )
        text = numbers(_STRAY_APOSTROPHE.sub(" ", text))
        return _PERCENT_NOT_AFTER_DIGIT.sub(" ", _SYMBOL_NOT_BEFORE_DIGIT.sub(" ", text))

    return apply


@dataclass(frozen=True)
class Preset:
    name: str
    version: str
    description: str
    build: Callable[[], Callable[[str], str]]
    library: str | None = None  # the PyPI package whose rules the preset applies

    def create(self) -> Normalizer:
        library = f"{self.library} {_package_version(self.library)}" if self.library else None
        return Normalizer(self.name, self.version, self.build(), self.description, library=library)


PRESETS: tuple[Preset, ...] = (
    Preset(
        "whisper-english",
        "1",
        "OpenAI Whisper's English normaliser: case, punctuation, numbers, and word forms rewritten "
        "(contractions expanded, gonna → going to, British → American spelling, fillers and bracketed text removed)",
        _whisper_english,
        library="whisper-normalizer",
    ),
    Preset(
        "dialect-preserving",
        "1",
        "case, punctuation, whitespace and number formats folded (numbers as whisper-english); "
        "word forms (ain't, gonna, y'all, colour, uh) left as written",
        _dialect_preserving,
        library="whisper-normalizer",
    ),
    Preset("basic", "1", "case and punctuation folded (in-word apostrophes kept); nothing else", lambda: basic),
    Preset("none", "1", "text as written; only runs of whitespace collapsed", lambda: identity),
)


# ---------------------------------------------------------------------------------------------- user files


# jiwer transforms by their snake-case names, with the kind of argument each takes (None: none).
_STEPS: dict[str, tuple[Callable[..., Callable[[str], str]], type | None]] = {
    "to_lower_case": (jiwer.ToLowerCase, None),
    "to_upper_case": (jiwer.ToUpperCase, None),
    "remove_punctuation": (jiwer.RemovePunctuation, None),
    "remove_multiple_spaces": (jiwer.RemoveMultipleSpaces, None),
    "strip": (jiwer.Strip, None),
    "remove_white_space": (lambda: jiwer.RemoveWhiteSpace(replace_by_space=True), None),
    "expand_common_english_contractions": (jiwer.ExpandCommonEnglishContractions, None),
    "remove_kaldi_non_words": (jiwer.RemoveKaldiNonWords, None),
    "substitute_words": (lambda mapping: jiwer.SubstituteWords(_strings(mapping)), dict),
    "substitute_regexes": (lambda mapping: jiwer.SubstituteRegexes(_compiled(_strings(mapping))), dict),
    "remove_specific_words": (lambda words: jiwer.RemoveSpecificWords(_strings(words)), list),
    "preset": (lambda spec: preset(spec), str),  # a built-in preset as one step: {preset: basic@1}
}


def _strings(items: Any) -> Any:
    values = [*items.keys(), *items.values()] if isinstance(items, dict) else list(items)
    odd = [v for v in values if not isinstance(v, str)]
    if odd:
        raise InputError(f"every word and replacement must be text ({odd[0]!r} is not; quote it)")
    return items


def _compiled(patterns: dict[str, str]) -> dict[str, str]:
    """jiwer compiles lazily, at the first text; a bad pattern must fail when the file is read."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"bad regular expression {pattern!r}: {exc}") from None
    return patterns


class NormalizerFile(BaseModel):
    """A user's normaliser: ``name``, ``version`` and the ``steps`` applied in order."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    version: str | int
    description: str = ""
    steps: list[str | dict[str, Any]] = Field(min_length=1)


def load_normalizer_file(path: Path) -> Normalizer:
    """A YAML normaliser, for example::

    name: clinic
    version: 2
    steps:
      - preset: basic@1
      - substitute_words: {bp: blood pressure}
      - remove_specific_words: [um, uh]
    """
    try:
        spec = NormalizerFile.model_validate(read_yaml(path, "normalizer"))
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, model=NormalizerFile)}") from None
    if spec.name in {p.name for p in PRESETS}:
        raise InputError(f"{path}: 'name': {spec.name} is a built-in preset; give your normaliser its own name")
    transforms = [_build_step(path, i, step) for i, step in enumerate(spec.steps)]
    composed = jiwer.Compose(transforms)
    definition = spec.model_dump(mode="json")
    definition["version"] = str(spec.version)
    return Normalizer(spec.name, str(spec.version), composed, spec.description, source=str(path), definition=definition)


def _build_step(path: Path, index: int, step: str | dict[str, Any]) -> Callable[[str], str]:
    where = f"{path}: 'steps[{index}]'"
    if isinstance(step, dict):
        if len(step) != 1:
            raise InputError(f"{where}: one step per list item, as {{name: argument}} ({len(step)} keys given)")
        ((kind, argument),) = step.items()
    else:
        kind, argument = step, None
    if kind not in _STEPS:
        close = difflib.get_close_matches(kind, _STEPS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InputError(f"{where}: unknown step '{kind}'; {hint}steps: {', '.join(_STEPS)}")
    build, takes = _STEPS[kind]
    if takes is None and argument is not None:
        raise InputError(f"{where}: '{kind}' takes no argument; write it as a plain list item")
    if takes is not None and not isinstance(argument, takes):
        raise InputError(f"{where}: '{kind}' takes a {_KIND_NAMES[takes]}, not {type(argument).__name__}")
    try:
        return build() if takes is None else build(argument)
    except InputError as exc:
        raise InputError(f"{where}: '{kind}': {exc}") from None


_KIND_NAMES = {dict: "mapping", list: "list", str: "string such as basic@1"}


# ---------------------------------------------------------------------------------------------- lookup


def is_normalizer_file(spec: str) -> bool:
    return spec.lower().endswith(FILE_SUFFIXES)


def get_normalizer(spec: str) -> Normalizer:
    """The normaliser a spec names: a preset, an entry point, or a YAML file (relative to the
    working directory; a run config resolves its own relative to the config file)."""
    if is_normalizer_file(spec):
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"normalizer file {spec} not found")
        return load_normalizer_file(path)
    name, _, wanted = spec.partition("@")
    if any(p.name == name for p in PRESETS):
        return preset(spec)
    plugin = _entry_point(name)
    if plugin is not None:
        if wanted and wanted != plugin.version:
            raise InputError(f"normalizer '{name}' is at version {plugin.version}, not {wanted}")
        return plugin
    names = [p.name for p in PRESETS] + _plugins().names()
    names = list(dict.fromkeys(names))
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise InputError(
        f"unknown normalizer '{spec}'; {hint}choose one of: {', '.join(names)}, or a path to a normalizer YAML"
    )


def preset(spec: str) -> Normalizer:
    """A built-in preset, ``name`` (the newest version) or ``name@version``."""
    name, _, wanted = spec.partition("@")
    versions = [p for p in PRESETS if p.name == name]
    if not versions:
        raise InputError(f"unknown preset '{name}'; presets: {', '.join(dict.fromkeys(p.name for p in PRESETS))}")
    if not wanted:
        return max(versions, key=lambda p: int(p.version)).create()
    for candidate in versions:
        if candidate.version == wanted:
            return candidate.create()
    raise InputError(f"normalizer '{name}' has no version {wanted}; versions: {', '.join(p.version for p in versions)}")


class _NormalizerPlugins(PluginRegistry[Normalizer]):
    kind = "normalizer"
    error = InputError


def _plugins() -> PluginRegistry[Normalizer]:
    """Third parties' normalisers: the ``asrfair.normalizers`` entry points, through the shared registry."""
    return _NormalizerPlugins.with_entry_points({}, ENTRY_POINT_GROUP)


def _entry_point(name: str) -> Normalizer | None:
    """A third party's normaliser: the entry point names a Normalizer or a callable returning one."""
    plugins = _plugins()
    if name not in plugins.names():
        return None
    source = plugins.source(name)
    target = plugins.target(name)
    try:
        found = target if isinstance(target, Normalizer) else target() if callable(target) else None
    except Exception as exc:  # a third party's code: its failure is a configuration error here
        raise InputError(f"normalizer '{name}' ({source}) failed to build: {type(exc).__name__}: {exc}") from None
    if not isinstance(found, Normalizer) or found.name != name:
        raise InputError(
            f"normalizer entry point '{name}' ({source}) must give a "
            f"harness.scoring.normalisers.Normalizer named '{name}'"
        )
    return Normalizer(
        found.name,
        found.version,
        found.apply,
        found.description,
        source=f"entry point {source}",
        library=found.library,
        definition=found.definition,
    )


def available_normalizers() -> list[Normalizer]:
    """Every preset version and every installed plugin, for ``asrfair normalizers``."""
    found = [p.create() for p in PRESETS]
    for name in _plugins().names():
        try:
            plugin = _entry_point(name)
        except InputError as exc:  # one broken plugin must not hide the others
            log.warning("%s", exc)
            continue
        if plugin is not None and all(n.name != plugin.name for n in found):
            found.append(plugin)
    return found
