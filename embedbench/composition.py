"""From Hydra's composed config to the typed objects of :mod:`embedbench.config`, and any error on the way
as one line naming the key and what it accepts.

Composition already refuses mistyped values, unknown choices and unknown keys in YAML files. :func:`load`
adds what it cannot see: keys added with ``+`` (Hydra opens the schema for them), eval tasks (typed by
their ``type``) and the checks in the schemas' ``__post_init__``.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from embedbench import config
from embedbench.config import TASK_SCHEMAS, RunConfig, TaskConfig
from embedbench.errors import EmbedbenchError


def load(cfg: DictConfig) -> RunConfig:
    """The composed config as typed objects; any setting it cannot hold stops with one line."""
    try:
        _refuse_unknown_keys(cfg, "")
        for key in cfg.get("index") or {}:
            cfg.index[key].name = key  # before the checks, so they can name the index
        typed = OmegaConf.to_object(cfg)
        if isinstance(typed.eval.tasks, dict):
            typed.eval.tasks = {key: task_config(key, spec) for key, spec in typed.eval.tasks.items()}
        return typed
    except OmegaConfBaseException as exc:
        raise EmbedbenchError(describe(exc)) from None


def as_dict(typed: RunConfig) -> dict:
    """The typed config as plain values, enums as strings: what MLflow params and ``results.json`` hold."""
    return OmegaConf.to_container(OmegaConf.structured(typed), enum_to_str=True)


def task_config(key: str, spec) -> TaskConfig:
    """One eval task, checked against the schema its ``type`` names."""
    where = f"eval.tasks.{key}"
    if isinstance(spec, TaskConfig):  # typed by the schema its YAML named, checked again: `type` may differ
        spec = OmegaConf.to_container(OmegaConf.structured(spec))
    if not isinstance(spec, (dict, DictConfig)):
        raise EmbedbenchError(f"{where}: expected a mapping with a type, got {spec!r}")
    kind = spec.get("type")
    if kind is None:  # settings for a task no eval config declared (an experiment's, under another eval=)
        raise EmbedbenchError(f"{where}: {', '.join(map(str, spec))} set for a task that eval= does not have; "
                              f"choose an eval= with a {key} task, or give the task a type")
    if kind not in TASK_SCHEMAS:
        raise EmbedbenchError(f"{where}.type={kind}: choose one of {', '.join(sorted(TASK_SCHEMAS))}")
    schema = TASK_SCHEMAS[kind]
    node = OmegaConf.structured(schema)
    try:
        known = [f.name for f in fields(schema)]
        unknown = [k for k in spec if k not in known]
        if unknown:
            raise EmbedbenchError(unknown_key(f"{where}.{unknown[0]}", known, f"a {kind} task"))
        node.merge_with(spec)
        task = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise EmbedbenchError(describe(exc, prefix=where)) from None
    except EmbedbenchError as exc:
        message = str(exc)
        raise EmbedbenchError(message if message.startswith(where) else f"{where}: {message}") from None
    task.name = task.name or key
    return task


def _refuse_unknown_keys(node, where: str) -> None:
    """Keys that ``+key=value`` (Hydra opens the struct flag for it) added beside a schema's fields."""
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
        for key in node:
            path = f"{where}.{key}" if where else str(key)
            if known is not None and key not in known:
                raise EmbedbenchError(unknown_key(path, sorted(known)))
            _refuse_unknown_keys(node._get_node(key), path)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            _refuse_unknown_keys(node._get_node(i), f"{where}[{i}]")


def unknown_key(path: str, known: list[str], owner: str | None = None) -> str:
    """``path: unknown key (<owner> takes ...); did you mean ...?`` -- the owner is the key's parent."""
    parent, _, key = path.rpartition(".")
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
    return f"{path}: unknown key ({owner or parent or 'the config'} takes {', '.join(known)}){hint}"


SCHEMAS = {name: schema for name, schema in vars(config).items() if is_dataclass(schema)}


def describe(exc: BaseException, prefix: str = "") -> str:
    """One line for an OmegaConf or Hydra composition error."""
    chain = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    for err in chain:
        if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
            key = f"{prefix}.{err.full_key}" if prefix else str(err.full_key)
            return _explain(key, str(getattr(err, "msg", err)).strip().splitlines()[0])
    text = str(exc)
    option = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if option and "Available options" in text:
        group, name = option.groups()
        listed = text.split("Available options")[1].split("Config search path")[0]
        choices = [line.strip() for line in listed.splitlines()[1:] if line.strip()]
        close = difflib.get_close_matches(name, choices, n=1)
        return (f"{group}={name}: no such option; choose one of {', '.join(choices)}"
                + (f" (did you mean {group}={close[0]}?)" if close else ""))
    key = re.search(r"full_key: (\S+)", text)
    if key:
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("In '")
                 and "raised while composing" not in line]
        return _explain(key.group(1), lines[0] if lines else text.strip())
    lines = [line.strip() for line in text.split("Config search path")[0].splitlines() if line.strip()]
    out = ""
    for part in lines:
        out += (" " if out.endswith(":") else "; " if out else "") + part
    return out


def _explain(key: str, message: str) -> str:
    missing = re.match(r"Key '([^']+)' not in '(\w+)'", message)
    if missing and missing.group(2) in SCHEMAS:
        return unknown_key(key, sorted(f.name for f in fields(SCHEMAS[missing.group(2)])))
    value = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", message)
    if value:
        wanted = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}.get(value.group(2),
                                                                                              value.group(2))
        return f"{key}={value.group(1)}: expected {wanted}"
    choice = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", message)
    if choice:
        return f"{key}={choice.group(1)}: choose one of {choice.group(2)}"
    if "missing mandatory value" in message.lower():
        return f"{key}: missing (no default; set it)"
    return f"{key}: {message}"
