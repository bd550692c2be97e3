"""The configuration reference, generated from the pydantic models so it cannot drift from the code.

``retrainer config reference`` prints it; README.md embeds it between markers and a test keeps
the two equal.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from retrainer.config import RetrainerConfig
from retrainer.durations import format_duration

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(annotation) if a is not type(None)) + " (optional)"
    if origin in (list, tuple):
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        return "mapping"
    name = getattr(annotation, "__name__", str(annotation))
    return {"timedelta": "duration", "str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
        name, name
    )


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    if value is None or value is PydanticUndefined:
        return ""
    if hasattr(value, "total_seconds"):
        return f"`{format_duration(value)}`"
    return f"`{json.dumps(value)}`"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is dict:
        return None
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{field.alias or name}"
        nested = _nested_model(field.annotation)
        description = (field.description or "").replace("|", "\\|")
        if nested is not None and get_origin(field.annotation) is list:
            rows.append(f"| `{key}` | list | {_default(field)} | {description} |")
            rows.extend(_rows(nested, key + "[]."))
        elif nested is not None:
            doc = (nested.__doc__ or "").strip().splitlines()
            rows.append(f"| `{key}` | section | | {description or (doc[0] if doc else '')} |")
            rows.extend(_rows(nested, key + "."))
        else:
            rows.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    return rows


def config_reference() -> str:
    """The markdown table of every key of retrainer.yaml, with its type, default and meaning."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|", *_rows(RetrainerConfig, "")]
    return "\n".join(lines) + "\n"
