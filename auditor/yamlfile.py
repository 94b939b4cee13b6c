"""Rule files are YAML that people write: load them keeping line numbers, so every error can say
file:line: field: what is wrong (one line), through pydantic validation.

A leaf module like errors.py: any stage that reads rule files may import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from auditor.errors import RuleFileError

T = TypeVar("T")
Loc = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """Safe loading (no Python objects); duplicate mapping keys are errors, not silent overrides."""


def load_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Return the file's data and the line (1-based) of every mapping key and list item in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(str(path), None, None, f"cannot read: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RuleFileError(str(path), line, None, f"not valid YAML: {problem}") from exc
    converter = _Converter(path)
    return converter.convert(node), converter.lines


MAX_NODES = 1_000_000  # aliases can make a small file expand enormously ("billion laughs")


class _Converter:
    """Turns a composed node tree into plain data, recording the line of every key and item."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.lines: dict[Loc, int] = {}
        self._constructor = _Loader("")
        self._nodes = 0

    def convert(self, node: yaml.Node | None, loc: Loc = ()) -> Any:
        if node is None:
            return None
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise RuleFileError(str(self._path), node.start_mark.line + 1, None, "too many values (alias bomb?)")
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node, loc)
                if key in out:
                    raise RuleFileError(str(self._path), key_node.start_mark.line + 1, field_name((*loc, key)),
                                        "given twice")
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise RuleFileError(str(self._path), node.start_mark.line + 1, field_name(loc) or None,
                                "a key must be a plain value")
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise RuleFileError(str(self._path), node.start_mark.line + 1, field_name(loc) or None,
                                f"bad value: {exc}") from exc


class LocatedError(ValueError):
    """A check across fields (a repeated id, a dangling reference) that knows where in the file it
    failed: raised in a model validator, whose own location would stop at the model."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc


def validate(path: Path, data: Any, lines: dict[Loc, int], model: type[T]) -> T:
    """Validate `data` as `model` (a pydantic model); a RuleFileError names file:line: field."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        errors = exc.errors()
        # a misspelt key shows up twice: as an unknown field and as a missing one; name the typo
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, LocatedError):
            raise located(path, lines, inner.loc, str(inner)) from exc
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        raise RuleFileError(str(path), line_of(lines, loc), field_name(loc), _message(err)) from exc


def located(path: Path, lines: dict[Loc, int], loc: Loc, message: str) -> RuleFileError:
    """Return the error for a problem at `loc` of a loaded file: file:line: field: message."""
    return RuleFileError(str(path), line_of(lines, loc), field_name(loc) or None, message)


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """Return the line of `loc`, or of its nearest parent that has one."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def field_name(loc: Loc) -> str:
    """Return a location as people write it: vendors[3].ouis[0]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: Any) -> str:
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown field"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")
