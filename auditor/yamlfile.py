"""Rule files are YAML that people write: load them keeping line numbers, so every error can say
file:line: field: what is wrong (one line), through pydantic validation.

A leaf module like errors.py: any stage that reads rule files may import it.
"""

from __future__ import annotations

import re
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
    except RecursionError:  # PyYAML composes recursively: a deeply nested file must not crash us
        raise RuleFileError(str(path), None, None, "not valid here: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RuleFileError(str(path), line, None, f"not valid YAML: {problem}") from exc
    converter = _Converter(path)
    return converter.convert(node), converter.lines


MAX_NODES = 100_000  # aliases can make a small file expand enormously ("billion laughs")
MAX_DEPTH = 32
_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_OCTAL = re.compile(r"^[-+]?0[0-9_]+$")


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
        if len(loc) > MAX_DEPTH:
            raise RuleFileError(str(self._path), node.start_mark.line + 1, field_name(loc[:3]) or None,
                                f"nested more than {MAX_DEPTH} levels deep")
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
        where = (str(self._path), node.start_mark.line + 1, field_name(loc) or None)
        # YAML 1.1 reads 1:30 as 90 (base 60) and 010 as 8 (octal): never what a rule writer meant
        if node.tag in (_INT_TAG, _FLOAT_TAG) and (":" in node.value or _OCTAL.match(node.value)):
            raise RuleFileError(*where, f"{node.value!r} is ambiguous in YAML (read as a base-60 or octal "
                                        "number): quote it")
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise RuleFileError(*where, f"bad value: {exc}") from exc
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise RuleFileError(*where, "not valid Unicode (a lone surrogate escape such as \\ud800?)") from None
        return value


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
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if isinstance(inner, LocatedError):
            # raised by a nested model's validator: its location is relative to that model, whose own
            # location is the error's (empty for the top-level model)
            raise located(path, lines, (*loc, *inner.loc), str(inner)) from exc
        raise RuleFileError(str(path), line_of(lines, loc), field_name(loc) or None, _message(err)) from exc


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
