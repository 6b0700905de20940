"""Python config files, big_vision style: ``get_config(arg)`` returns an ``ml_collections.ConfigDict``.

``--config configs/sweep_style_weight.py:quick`` loads the file and calls ``get_config("quick")``;
``--config.loss.style_weight=1e5`` overrides one field. The config is locked, so a misspelt field
is an error (naming the field and the valid ones), not a silently ignored setting.
"""

import ast
import importlib.util
import inspect
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from nstjax.errors import NstjaxError, one_line


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Loads ``path.py[:arg]`` and applies ``field.sub=value`` overrides.

    Args:
        spec: a Python file defining ``get_config(arg=None)``, optionally followed by ``:arg``.
        overrides: strings ``"a.b=value"``; the value is parsed as a Python literal when it is one
            (``1e5``, ``[1, 2]``, ``True``), else taken as a string.

    Returns:
        The locked config.

    Raises:
        NstjaxError: a missing file, a file without ``get_config``, or an unknown field.
    """
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise NstjaxError(f"--config {path}: no such file")
    if file.suffix != ".py":
        raise NstjaxError(f"--config {path}: not a Python file (a .py defining get_config)")
    module_spec = importlib.util.spec_from_file_location(f"nstjax_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # a config file is user code: report it in one line
        raise NstjaxError(
            f"--config {path}: failed to load ({type(e).__name__}: {one_line(e)})"
        ) from e
    if not callable(getattr(module, "get_config", None)):
        raise NstjaxError(f"--config {path}: defines no get_config(arg)")
    config = _called(module.get_config, spec, arg)
    config.lock()
    for item in overrides:
        apply_override(config, item)
    return config


def _called(get_config, spec: str, arg: str) -> ml_collections.ConfigDict:
    """``get_config(arg)``, or ``get_config()`` for one that takes no argument (when none is
    given); whatever the user's code raises is one line naming the file."""
    try:
        takes_arg = bool(inspect.signature(get_config).parameters)
    except (TypeError, ValueError):
        takes_arg = True
    if arg and not takes_arg:
        raise NstjaxError(f"--config {spec}: its get_config() takes no argument")
    try:
        return ml_collections.ConfigDict(get_config(arg or None) if takes_arg else get_config())
    except Exception as e:  # user code: its KeyError, TypeError, ... in one line
        raise NstjaxError(f"--config {spec}: {type(e).__name__}: {one_line(e)}") from e


def parse_value(text: str):
    """A Python literal if ``text`` is one (and ``nan``, ``inf``, ``-inf`` floats), else the
    string itself."""
    if text.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Sets ``a.b.c=value`` on a locked config; unknown fields raise NstjaxError."""
    key, sep, text = item.partition("=")
    if not sep:
        raise NstjaxError(f"--config.{item}: expected --config.FIELD=VALUE")
    node, parts = config, key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(parts[:depth]) or "config"
            valid = (
                ", ".join(sorted(node.keys()))
                if isinstance(node, ml_collections.ConfigDict)
                else ""
            )
            raise NstjaxError(f"--config.{key}: {where} has no field {part!r} (fields: {valid})")
        if depth < len(parts) - 1:
            node = node[part]
    value = parse_value(text)
    current = node[parts[-1]]
    group = isinstance(current, ml_collections.ConfigDict)
    if group and not isinstance(value, dict):
        fields = ", ".join(sorted(current.keys())) or "none yet"
        raise NstjaxError(
            f"--config.{key} {text!r}: {key} is a group of fields ({fields}); set one of them "
            f"as --config.{key}.FIELD=VALUE"
        )
    if value is None and current is not None:
        raise NstjaxError(
            f"--config.{key} {text!r}: {key} needs a {type(current).__name__}, not None"
        )
    if isinstance(value, dict) and not group:
        raise NstjaxError(f"--config.{key} {text!r}: a mapping, where {key} takes one value")
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, (tuple, list)) and not isinstance(value, (tuple, list)):
        value = [value]
    try:
        node[parts[-1]] = value
    except (TypeError, ValueError) as e:
        wanted = type(current).__name__ if current is not None else "value of its type"
        raise NstjaxError(
            f"--config.{key} {text!r}: must be of type {wanted} (as {key} = "
            f"{one_line(repr(current))[:60]}), "
            f"got a {type(value).__name__}"
        ) from e


def split_config_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates ``--config.FIELD=VALUE`` overrides from the other arguments."""
    rest, overrides = [], []
    for arg in argv:
        if arg.startswith("--config."):
            overrides.append(arg[len("--config.") :])
        else:
            rest.append(arg)
    return rest, overrides
