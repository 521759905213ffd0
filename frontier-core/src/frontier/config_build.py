"""Building a :class:`~frontier.config.Config` from text: strict structuring,
errors with dotted paths, ``--set`` overrides, and TOML output.

Structuring is strict: an unknown key, a value of the wrong type or one outside the
allowed set is an error that names the full dotted path of the field and what is
allowed. A plugin slot's ``type`` picks the plugin's own config class.
"""

from __future__ import annotations

import datetime
import math
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import tomli_w
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from frontier.config import SLOTS, Config, FieldValueError, PluginConfig
from frontier.errors import ConfigError

__all__ = [
    "apply_overrides",
    "build_config",
    "config_to_dict",
    "config_to_toml",
    "parse_override",
    "read_config_file",
]


# --------------------------------------------------------------------------- building


def _strict_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _strict_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _strict_str(value: Any, _type: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _make_converter(
    plugin_configs: Mapping[str, Mapping[str, type[PluginConfig]]],
) -> Any:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(str, _strict_str)

    for slot, (kind, base) in SLOTS.items():
        converter.register_structure_hook_func(
            lambda cls, base=base: cls is base,
            _slot_hook(converter, slot, kind, base, plugin_configs.get(kind, {})),
        )
    return converter


def _slot_hook(
    converter: Any,
    slot: str,
    kind: str,
    base: type[PluginConfig],
    classes: Mapping[str, type[PluginConfig]],
) -> Any:
    default_type = attrs.fields_dict(base)["type"].default

    def structure(data: Any, _type: type) -> PluginConfig:
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a table with a `type` key, got {data!r}")
        name = data.get("type", default_type)
        if name not in classes:
            allowed = ", ".join(sorted(classes)) or "(none of this kind loaded)"
            raise _UnknownPlugin(
                f"{slot}.type: unknown {kind} {name!r}; loaded: {allowed}"
                + _restriction_note()
            )
        cls = classes[name]
        if cls is base:
            # A plugin without options: only `type` is allowed.
            extra = set(data) - {"type"}
            if extra:
                raise ForbiddenExtraKeysError("", base, extra)
            return base(type=name)
        return converter.structure(_over_defaults({**data, "type": name}, cls), cls)

    return structure


def _over_defaults(data: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """``data`` with every partial table laid over its field's default value.

    A field whose default is an attrs instance built by a factory (a synthetic
    workload's ``prompt_tokens``, uniform over 128 to 2048) keeps the fields the
    user's table leaves out at that default's values, not at the class's own
    defaults (``--set workload.prompt_tokens.min=500`` keeps the uniform
    distribution and its maximum).
    """
    merged = dict(data)
    for field in attrs.fields(cls):
        given = merged.get(field.name)
        if not isinstance(given, Mapping) or not isinstance(
            field.default,
            attrs.Factory,  # type: ignore[arg-type]
        ):
            continue
        if field.default.takes_self:
            continue
        default = field.default.factory()
        if attrs.has(type(default)):
            base = _drop_none(_to_data(default, False))
            merged[field.name] = _over_defaults({**base, **given}, type(default))
    return merged


class _UnknownPlugin(ValueError):
    pass


def _restriction_note() -> str:
    restricted = os.environ.get("FRONTIER_PLUGINS", "").strip()
    if not restricted:
        return ""
    return (
        f" (FRONTIER_PLUGINS={restricted} loads only those entry points or "
        "distributions; unset it to load every installed plugin)"
    )


def _describe_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe_type(a) for a in args)
    names = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
    }
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _flatten_errors(error: BaseException, path: str) -> list[str]:
    """Turn a cattrs validation error tree into ``path: message`` lines."""
    if isinstance(error, ClassValidationError):
        lines = []
        with_notes, without_notes = error.group_exceptions()
        for sub in without_notes:
            lines += _flatten_errors(sub, path)
        for sub, note in with_notes:
            name = getattr(note, "name", None)
            sub_path = f"{path}.{name}" if name else path
            sub_path = sub_path.lstrip(".")
            if isinstance(sub, ClassValidationError | IterableValidationError):
                lines += _flatten_errors(sub, sub_path)
            elif isinstance(sub, ForbiddenExtraKeysError):
                allowed = ", ".join(a.name for a in attrs.fields(sub.cl))
                extra = ", ".join(sorted(sub.extra_fields))
                # Raised by a slot's own hook (an option-less plugin), so the
                # unknown keys belong to this field, not to its parent.
                where = sub_path or "the top level"
                lines.append(
                    f"{where}: unknown key(s) {extra}; allowed keys: {allowed}"
                )
            elif isinstance(sub, _UnknownPlugin):
                lines.append(str(sub))
            elif isinstance(sub, KeyError):
                lines.append(f"{sub_path}: required value is missing")
            elif isinstance(sub, FieldValueError):
                lines.append(f"{sub_path}.{sub.field}: {sub}")
            else:
                lines.append(f"{sub_path}: {_describe_problem(sub, note)}")
        return lines
    if isinstance(error, IterableValidationError):
        lines = []
        with_notes, without_notes = error.group_exceptions()
        for sub in without_notes:
            lines += _flatten_errors(sub, path)
        for sub, note in with_notes:
            index = getattr(note, "index", "?")
            lines += _flatten_errors(sub, f"{path}[{index}]")
        return lines
    if isinstance(error, ForbiddenExtraKeysError):
        allowed = ", ".join(a.name for a in attrs.fields(error.cl))
        extra = ", ".join(sorted(error.extra_fields))
        return [
            f"{path or 'the top level'}: unknown key(s) {extra}; "
            f"allowed keys: {allowed}"
        ]
    if isinstance(error, FieldValueError):
        return [f"{path + '.' if path else ''}{error.field}: {error}"]
    return [f"{path or 'config'}: {error}"]


def _describe_problem(error: BaseException, note: Any) -> str:
    expected_type = getattr(note, "type", None)
    if typing.get_origin(expected_type) is Literal or (
        isinstance(error, ValueError) and "not in literal" in str(error)
    ):
        allowed = _describe_type(expected_type)
        value = getattr(error, "args", ("?",))[0]
        value = str(value).split(" not in literal")[0]
        return f"{value!r} is not allowed; use {allowed}"
    if attrs.has(expected_type) and isinstance(error, TypeError | AttributeError):
        return "expected a table of keys (a [section] in TOML)"
    if isinstance(error, TypeError | ValueError) and str(error).startswith("expected"):
        return str(error)
    return f"{error} (expected {_describe_type(expected_type)})"


def build_config(
    data: Mapping[str, Any],
    plugin_configs: Mapping[str, Mapping[str, type[PluginConfig]]],
    source: str = "config",
) -> Config:
    """Structure a raw mapping into a :class:`Config`, strictly.

    Args:
        data: The parsed TOML (with overrides applied).
        plugin_configs: For each plugin kind, plugin name -> its config class.
        source: Name of the config's origin, for error messages.

    Raises:
        ConfigError: Listing every unknown key and mistyped value by its dotted
            path; range checks run on sections whose types are right, so a value
            out of range is reported once the type errors are fixed.
    """
    converter = _make_converter(plugin_configs)
    data = dict(data)
    for slot in SLOTS:
        # An absent slot still names its default plugin, whose class has defaults.
        data.setdefault(slot, {})
    try:
        return converter.structure(data, Config)
    except (ClassValidationError, ForbiddenExtraKeysError) as error:
        lines = _flatten_errors(error, "")
    except (ValueError, TypeError) as error:
        lines = [str(error)]
    raise ConfigError(f"invalid configuration ({source}):\n  " + "\n  ".join(lines))


def config_to_dict(config: Config, *, absolute_paths: bool = False) -> dict[str, Any]:
    """The config as plain data (``None`` values dropped, as TOML has no null).

    Args:
        config: The config.
        absolute_paths: Write the fields declared with
            :func:`frontier.config.path_field` as absolute paths (resolved
            against the working directory, as a run reads them).
    """
    return _drop_none(_to_data(config, absolute_paths))


def _to_data(value: Any, absolute_paths: bool) -> Any:
    # By each value's own class, so a plugin's config keeps its own fields.
    if attrs.has(type(value)):
        data = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if absolute_paths and field.metadata.get("path") and isinstance(item, str):
                data[field.name] = os.path.abspath(item) if item else item
            else:
                data[field.name] = _to_data(item, absolute_paths)
        return data
    if isinstance(value, list | tuple):
        return [_to_data(v, absolute_paths) for v in value]
    if isinstance(value, dict):
        return {k: _to_data(v, absolute_paths) for k, v in value.items()}
    return value


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value


def config_to_toml(config: Config, *, absolute_paths: bool = False) -> str:
    """The resolved config as TOML text, loadable with ``frontier run``
    (``absolute_paths`` as in :func:`config_to_dict`)."""
    return tomli_w.dumps(config_to_dict(config, absolute_paths=absolute_paths))


# --------------------------------------------------------------------------- sources


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML (or JSON) config file into a mapping.

    Raises:
        ConfigError: The file is missing or does not parse; the message gives
            the parser's line and column.
    """
    path = Path(path)
    try:
        text = path.read_text("utf-8-sig")  # a byte-order mark is not TOML
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a TOML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from None
    if path.suffix == ".json":
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"config file {path} is not valid JSON: {error}"
            ) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"config file {path} is not valid TOML: {error}"
            ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table at the top level")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``dotted.path=value``; the value is read as a TOML value or a string.

    ``--set model.max_model_len=4096`` gives an integer, ``--set a.b=true`` a bool,
    ``--set model.name=llama-2-7b`` a string.

    Raises:
        ConfigError: No ``=`` or an empty path.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.path=value")
    path, raw = text.split("=", 1)
    keys = [key.strip() for key in path.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"--set {text!r}: the path has an empty part")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    if isinstance(value, datetime.date | datetime.time):
        # No field takes a TOML date: `run_id=2024-06-01` means the text.
        value = raw.strip()
    return keys, value


def apply_overrides(
    data: dict[str, Any], overrides: list[tuple[list[str], Any]]
) -> dict[str, Any]:
    """Return ``data`` with each ``(keys, value)`` set at its dotted path.

    A table value is merged into the table already there, key by key (so
    ``--set 'workload={type="synthetic"}'`` keeps ``-n 30``'s request count):
    an override never drops a field.
    """
    result = _deep_copy(data)
    for keys, value in overrides:
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(
                    f"--set {'.'.join(keys)}: {where} is a value, not a table"
                )
            node = child
        current = node.get(keys[-1])
        if isinstance(value, dict) and isinstance(current, dict):
            node[keys[-1]] = _merged(current, value)
        else:
            node[keys[-1]] = _deep_copy(value)
    return result


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys laid over it, tables merged in turn."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = _deep_copy(value)
    return result


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
