"""A small, safe filter language for slice ``where:`` expressions.

    where: "accent in ['scottish', 'welsh'] and noise != 'clean'"
    where: "snr_db >= 10 and not device == 'phone'"

Grammar: tag names, string/number constants and lists of them, ``== != < <= > >= in not in``,
``and or not`` and parentheses. Nothing else parses — no calls, attributes or arithmetic —
so a config file can never run code. Comparisons with a number compare the tag numerically
(values that are not numbers are then false); everything else compares strings. For an
utterance without the tag every comparison is false (so ``not (...)`` of one is true).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd  # imported where a mask is evaluated: parsing and checking need no pandas

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


MAX_DEPTH = 100  # of and/or/not nesting; far below Python's recursion limit
MAX_LENGTH = 100_000  # characters: Python's parser runs out of memory on 100,000 nested 'not' before any check


class WhereError(ValueError):
    """The expression is not in the filter language."""


def _shown(text: str) -> str:
    """The expression as quoted in an error: a 100,000-character one would make the line unreadable."""
    return repr(text if len(text) <= 80 else text[:80] + "...")


def parse_where(text: str) -> ast.Expression:
    if len(text) > MAX_LENGTH:
        raise WhereError(f"where expression of {len(text):,} characters (at most {MAX_LENGTH:,}); simplify it")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise WhereError(f"cannot parse where expression {_shown(text)}: {exc.msg}") from None
    except (RecursionError, MemoryError):  # the parser's and compiler's own nesting limits
        raise WhereError(f"in {_shown(text)}: nested more than {MAX_DEPTH} levels deep; simplify it") from None
    _check(tree.body, text)
    return tree


def _check(node: ast.AST, text: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:  # _check and evaluate recurse once per level
        raise WhereError(f"in {_shown(text)}: nested more than {MAX_DEPTH} levels deep; simplify it")
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text, depth + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, text, depth + 1)
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right, op = node.left, node.comparators[0], node.ops[0]
        if not isinstance(left, ast.Name):
            raise WhereError(f"in {_shown(text)}: the left side of a comparison must be a tag name")
        if isinstance(op, ast.In | ast.NotIn):
            if not (isinstance(right, ast.List | ast.Tuple) and all(_is_constant(e) for e in right.elts)):
                raise WhereError(f"in {_shown(text)}: 'in' needs a list of constants, e.g. accent in ['a', 'b']")
        elif type(op) not in _COMPARE or not _is_constant(right):
            raise WhereError(f"in {_shown(text)}: compare a tag with a constant using == != < <= > >= in")
    else:
        raise WhereError(
            f"in {_shown(text)}: only tag comparisons joined by and/or/not are allowed (found {type(node).__name__})"
        )


def _is_constant(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str | int | float)
        and not isinstance(node.value, bool)
    )


def referenced(tree: ast.Expression) -> Iterator[tuple[str, Any]]:
    """Every (tag, constant) the expression compares, to check names and values against the data."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            tag = node.left.id  # type: ignore[attr-defined]
            right = node.comparators[0]
            constants = right.elts if isinstance(right, ast.List | ast.Tuple) else [right]
            for constant in constants:
                yield tag, constant.value  # type: ignore[attr-defined]


def evaluate(tree: ast.Expression, frame: pd.DataFrame) -> pd.Series:
    """Boolean mask over ``frame`` rows."""
    return _eval(tree.body, frame).fillna(False).astype(bool)


def _eval(node: ast.AST, frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    if isinstance(node, ast.BoolOp):
        masks = [_eval(v, frame) for v in node.values]
        result = masks[0]
        for mask in masks[1:]:
            result = (result & mask) if isinstance(node.op, ast.And) else (result | mask)
        return result
    if isinstance(node, ast.UnaryOp):
        return ~_eval(node.operand, frame)
    if not isinstance(node, ast.Compare):  # parse_where admits nothing else
        raise WhereError(f"unexpected {type(node).__name__} in where expression")
    column = frame[node.left.id] if node.left.id in frame else pd.Series(pd.NA, index=frame.index)  # type: ignore[attr-defined]
    present = column.notna()
    op, right = node.ops[0], node.comparators[0]
    if isinstance(op, ast.In | ast.NotIn):
        values = [e.value for e in right.elts]  # type: ignore[attr-defined]
        numeric = any(not isinstance(v, str) for v in values)
        side = pd.to_numeric(column, errors="coerce") if numeric else column.astype("object")
        hit = side.isin(values)
        return present & (hit if isinstance(op, ast.In) else ~hit)
    value = right.value  # type: ignore[attr-defined]
    if isinstance(value, str):
        return present & _COMPARE[type(op)](column.astype("object"), value)
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers.notna() & _COMPARE[type(op)](numbers, value)
