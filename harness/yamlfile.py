"""Reading YAML inputs (run configs, slice files, dataset cards) with file-located errors."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError

# What a document may expand to (characters of text in its strings and keys, aliases counted at each
# use): 10,000 aliases of one 1 MB string read as 10 GB when written back. Real configs, slice files
# and cards are kilobytes; the largest tag maps a few megabytes.
MAX_EXPANDED_CHARS = 32_000_000


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` whose value errors carry the node's line: its constructors raise bare
    ``ValueError``/``KeyError`` for ``!!bool maybe``, ``!!int abc`` or an over-long integer."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, LookupError, TypeError, OverflowError) as exc:
            value = node.value if isinstance(node.value, str) else ""
            shown = repr(value if len(value) <= 40 else value[:40] + "...") if value else f"this {node.id}"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {shown} ({exc}); quote it to keep it as text", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key written twice is refused (YAML would keep the last silently), naming both lines."""
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            first = seen.setdefault((key_node.tag, key_node.value), key_node.start_mark.line + 1)
            if first != key_node.start_mark.line + 1:
                message = f"duplicate key {key_node.value!r} (also on line {first}); keep one"
                raise yaml.constructor.ConstructorError(None, None, message, key_node.start_mark)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = super().construct_yaml_int(node)
        # 0x/0o/0b integers escape Python's 4300-digit limit on reading, then break every str() later
        if value.bit_length() > 14_000:
            raise ValueError("an integer over 4300 digits")
        return value


def _not_json(loader: _Loader, node: yaml.Node) -> None:
    """Every value must survive the JSON written to run directories, so YAML's extra types are refused."""
    kind = node.tag.rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None, None, f"!!{kind} values are not supported; write text, a number, a list or a mapping", node.start_mark
    )


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
for _kind in ("binary", "timestamp", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_kind}", _not_json)
# An unquoted date stays text: a tag value or version label "2026-12-01" is a label, not a date.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(path: Path, what: str) -> Any:
    """Safe-load ``path``; a missing file or bad YAML is an InputError naming file:line."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no Python tags
        if (size := expanded_chars(data, {})) > MAX_EXPANDED_CHARS:
            raise InputError(
                f"{path}: {what} expands to {size:,} characters through its aliases (*name), over the "
                f"{MAX_EXPANDED_CHARS:,} allowed; write the values out instead of repeating an alias"
            )
        return data
    except yaml.reader.ReaderError as exc:  # a control character; its str() spans two lines
        line = text.count("\n", 0, exc.position) + 1
        raise InputError(f"{path}:{line}: bad YAML: {str(exc).splitlines()[0]}; remove the character") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{where}: bad YAML: {reason}") from None
    except RecursionError:
        raise InputError(f"{path}: bad YAML: nested too deeply; flatten the lists and mappings") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason}); re-save as UTF-8") from None


def expanded_chars(value: Any, seen: dict[int, int]) -> int:
    """Characters ``value`` takes once every alias is written out; shared nodes are sized once (``seen``)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, dict | list):
        return 8
    if id(value) not in seen:
        items = itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value
        seen[id(value)] = 2 + sum(expanded_chars(item, seen) for item in items)
    return seen[id(value)]
