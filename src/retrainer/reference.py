"""Reference sections generated from the code, so the docs cannot drift from it: the
configuration (pydantic models), the built-in triggers (their ``Params`` models) and the CLI
(the Typer app).

docs/reference.md embeds each between ``<!-- NAME:start -->`` / ``<!-- NAME:end -->`` markers; a
test keeps them equal, and ``python -m retrainer.cli.render_reference docs/reference.md`` rewrites them in place.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from retrainer.config import RetrainerConfig
from retrainer.durations import format_duration

if TYPE_CHECKING:
    import typer


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


BUILTIN_TRIGGERS = ("schedule", "model_age", "performance", "drift", "data_volume", "cost_benefit")


def triggers_reference() -> str:
    """Every built-in trigger's params with type and default (from its ``Params`` model)."""
    from retrainer.triggers.registry import available_triggers

    found = available_triggers()
    lines: list[str] = []
    for name in BUILTIN_TRIGGERS:
        cls = found[name].cls
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines += [f"**`{name}`** — {doc}", "", "| param | type | default | meaning |", "|---|---|---|---|"]
        lines += _rows(cls.Params, "")
        lines.append("")
    return "\n".join(lines)


def cli_reference(app: typer.Typer) -> str:
    """Every command and sub-command of ``app`` (the CLI passes its own) with its one-line help."""
    import typer.main

    group = typer.main.get_command(app)
    lines = ["| command | what it does |", "|---|---|"]

    def walk(cmd: Any, path: str) -> None:
        for name in sorted(getattr(cmd, "commands", {})):
            sub = cmd.commands[name]
            full = f"{path} {name}"
            if getattr(sub, "commands", None):
                walk(sub, full)
            else:
                help_line = ((sub.help or "").strip().splitlines() or [""])[0].replace("|", "\\|")
                lines.append(f"| `{full}` | {help_line} |")

    walk(group, "retrainer")
    return "\n".join(lines) + "\n"


SECTIONS: dict[str, Callable[[typer.Typer], str]] = {
    "config-reference": lambda app: config_reference(),
    "triggers-reference": lambda app: triggers_reference(),
    "cli-reference": cli_reference,
}


def render_sections(text: str, app: typer.Typer) -> str:
    """``text`` with every generated section replaced by its current content (``app``: the CLI)."""
    for name, make in SECTIONS.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"the document lacks the markers {start} ... {end}")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{make(app).rstrip()}\n{end}{tail}"
    return text
