"""How an fn_task's signature becomes a task type: ports, special parameters and the flat config model.

Everything here runs once, when the function is decorated, and every mistake it can find
(an unsupported type, a config type that needs arguments, an io_map naming no config field, a
config field named like an fn_task option) is a :class:`TypeError` then, naming the function.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from edge._fnconvert import Converter, content_of, converter_for, strip_optional
from edge.errors import ConfigError
from edge.task import Port

__all__ = ["OPTIONS", "FnSignature", "InputSpec", "OutputSpec", "Role", "analyse"]

NO_DEFAULT: Final = inspect.Parameter.empty

#: The fn_task options in the generated config; user config fields may not use these names.
OPTIONS: Final = ("synchronized", "sync_timeout_ms", "interval_ms")


class Role(Enum):
    INPUT = "input"
    TIMESTAMP = "timestamp"
    CONFIG = "config"
    STATE = "state"


@dataclass(frozen=True)
class InputSpec:
    name: str
    port: Port
    convert: Converter
    default: Any
    io_map: Mapping[str, str]


@dataclass(frozen=True)
class OutputSpec:
    name: str
    port: Port
    io_map: Mapping[str, str]


@dataclass(frozen=True)
class FnSignature:
    """What the generated task type needs to know about the function."""

    fn: Callable[..., Any]
    name: str
    is_async: bool
    thread_safe: bool
    params: tuple[tuple[str, Role, bool], ...]  # (name, role, keyword-only) in call order
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    tuple_return: bool
    config_type: type | None
    config_fields: tuple[str, ...]
    state_factory: Callable[[], Any] | None
    Config: type[BaseModel]

    def build_config(self, flat: BaseModel) -> Any:
        """The user's config object (dataclass or model) from the flat validated config."""
        if self.config_type is None:
            return None
        values = {name: getattr(flat, name) for name in self.config_fields}
        try:
            if isinstance(self.config_type, type) and issubclass(self.config_type, BaseModel):
                return self.config_type.model_validate(values)
            return self.config_type(**values)
        except (ValidationError, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid config for {self.name}: {exc}", field="config") from None


def _fail(fn_name: str, problem: str) -> TypeError:
    return TypeError(f"fn_task {fn_name}: {problem}")


def _split_annotated(fn_name: str, where: str, annotation: Any) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """``Annotated[T, io_metadata, io_map]`` -> ``(T, io_metadata, io_map)``; other extras are ignored."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation, {}, {}
    base, *extras = typing.get_args(annotation)
    dicts = [extra for extra in extras if isinstance(extra, Mapping)]
    if len(dicts) > 2:
        raise _fail(fn_name, f"{where}: Annotated takes at most two dicts (IO metadata, then io_map)")
    metadata = dict(dicts[0]) if dicts else {}
    io_map = dict(dicts[1]) if len(dicts) > 1 else {}
    for key in (*metadata, *io_map):
        if not isinstance(key, str):
            raise _fail(fn_name, f"{where}: IO metadata keys must be strings, not {key!r}")
    for key, value in io_map.items():
        if not isinstance(value, str):
            raise _fail(fn_name, f"{where}: io_map {key!r} must name a config field, not {value!r}")
    return base, metadata, io_map


def _port(base: Any, metadata: Mapping[str, Any]) -> Port:
    meta = dict(metadata)
    content = content_of(base)
    if "content" not in meta and content is not None:
        meta["content"] = content
    return Port.from_metadata(meta)


def _check_io_map(fn_name: str, where: str, io_map: Mapping[str, str], fields: tuple[str, ...],
                  has_config: bool) -> None:
    if io_map and not has_config:
        raise _fail(fn_name, f"{where}: an io_map needs a 'config' parameter to map fields from")
    for key, field in io_map.items():
        if field not in fields:
            raise _fail(fn_name, f"{where}: io_map {key!r} -> {field!r}: the config has no field {field!r} "
                                 f"(it has: {', '.join(fields) or 'none'})")


def _config_fields(config_type: Any) -> dict[str, tuple[Any, FieldInfo]]:
    """The user config's fields as pydantic field definitions (for a dataclass), or {} for a model."""
    if isinstance(config_type, type) and issubclass(config_type, BaseModel):
        return {}
    try:
        hints = typing.get_type_hints(config_type, include_extras=True)
    except Exception as exc:  # as for the function's own annotations
        raise TypeError(f"cannot resolve the annotations of {config_type.__name__} ({exc}); define the "
                        "types they name at module level") from None
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    for field in dataclasses.fields(config_type):
        if not field.init:
            continue
        description = field.metadata.get("description") if field.metadata else None
        if field.default is not dataclasses.MISSING:
            info = Field(default=field.default, description=description)
        else:
            info = Field(default_factory=field.default_factory, description=description)  # type: ignore[arg-type]
        fields[field.name] = (hints.get(field.name, Any), info)
    return fields


def _user_field_names(config_type: Any) -> tuple[str, ...]:
    if isinstance(config_type, type) and issubclass(config_type, BaseModel):
        return tuple(config_type.model_fields)
    return tuple(f.name for f in dataclasses.fields(config_type) if f.init)


def _check_config_type(fn_name: str, config_type: Any) -> None:
    is_model = isinstance(config_type, type) and issubclass(config_type, BaseModel)
    if not is_model and not (isinstance(config_type, type) and dataclasses.is_dataclass(config_type)):
        raise _fail(fn_name, f"'config' must be annotated with a dataclass or a pydantic model, not {config_type!r}")
    try:
        config_type()
    except Exception as exc:  # any failure means "not constructible with no arguments"
        raise _fail(fn_name, f"config type {config_type.__name__} must be constructible with no arguments "
                             f"(give every field a default): {exc}") from None
    reserved = sorted(set(_user_field_names(config_type)) & set(OPTIONS))
    if reserved:
        raise _fail(fn_name, f"config field(s) {', '.join(map(repr, reserved))} of {config_type.__name__} clash "
                             f"with fn_task options; the names {', '.join(OPTIONS)} are reserved: rename them")


def _options(input_count: int) -> dict[str, Any]:
    if input_count == 0:
        return {"interval_ms": (int, Field(1000, ge=1, le=86_400_000,
                                           description="call the function every this many milliseconds"))}
    if input_count == 1:
        return {}
    return {
        "synchronized": (bool, Field(False, description="merge the inputs in timestamp order")),
        "sync_timeout_ms": (int, Field(500, ge=0, le=3_600_000, description=(
            "with synchronized: release a buffered frame after waiting this long for the other inputs"))),
    }


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", name) if part) or "Fn"


def _config_model(sig_name: str, module: str, config_type: Any, input_count: int) -> type[BaseModel]:
    options = _options(input_count)
    model_name = f"{_camel(sig_name)}Config"
    doc = f"Config of the {sig_name} fn_task."
    if isinstance(config_type, type) and issubclass(config_type, BaseModel):
        extra = {} if "extra" in config_type.model_config else {"extra": "forbid"}
        return create_model(model_name, __base__=config_type, __module__=module, __doc__=doc,
                            __cls_kwargs__=extra, **options)
    definitions: dict[str, Any] = {**(_config_fields(config_type) if config_type is not None else {}), **options}
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), __module__=module, __doc__=doc,
                        **definitions)


def _outputs(fn_name: str, hints: Mapping[str, Any]) -> tuple[list[tuple[str, Any, dict[str, Any], dict[str, str]]],
                                                                bool]:
    """The output ports from the return annotation, and whether it is a tuple of outputs."""
    if "return" not in hints:
        return [], False
    annotation, _ = strip_optional(hints["return"])
    if annotation is None or annotation is type(None):
        return [], False
    if typing.get_origin(annotation) is typing.Annotated:
        base = typing.get_args(annotation)[0]
        if typing.get_origin(strip_optional(base)[0]) is tuple:
            raise _fail(fn_name, "annotate the elements of a returned tuple, not the tuple")
    if annotation is tuple:
        raise _fail(fn_name, "a return type of bare 'tuple': use tuple[T1, T2, ...] for several outputs")
    if typing.get_origin(annotation) is not tuple:
        base, metadata, io_map = _split_annotated(fn_name, "return", annotation)
        _check_type(fn_name, "return", base)
        return [("out", base, metadata, io_map)], False
    elements = typing.get_args(annotation)
    if not elements or elements == ((),) or Ellipsis in elements:
        raise _fail(fn_name, "a returned tuple needs a fixed number of elements: tuple[T1, T2, ...]")
    result = []
    for i, element in enumerate(elements):
        base, metadata, io_map = _split_annotated(fn_name, f"out{i}", element)
        _check_type(fn_name, f"out{i}", base)
        result.append((f"out{i}", base, metadata, io_map))
    return result, True


def _check_type(fn_name: str, where: str, annotation: Any) -> Converter:
    try:
        return converter_for(annotation)
    except TypeError as exc:
        raise _fail(fn_name, f"{where}: {exc}") from None


def analyse(fn: Callable[..., Any], *, name: str, thread_safe: bool) -> FnSignature:
    """Check ``fn`` and derive its task type's ports, special parameters and config model."""
    fn_name = getattr(fn, "__qualname__", name)
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise _fail(fn_name, "generators are not supported: return a value (or a tuple of values) per call")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError for a type defined where the annotation string cannot see it
        raise _fail(fn_name, f"cannot resolve its annotations ({exc}); define the types they name at "
                             "module level") from None
    params: list[tuple[str, Role, bool]] = []
    raw_inputs: list[tuple[str, Any, dict[str, Any], dict[str, str], Any]] = []
    config_type: Any = None
    state_factory: Callable[[], Any] | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise _fail(fn_name, f"*{param.name} and **{param.name} parameters cannot be ports: name each input")
        keyword = param.kind is param.KEYWORD_ONLY
        hint = hints.get(param.name, NO_DEFAULT)
        if param.name == "timestamp":
            if hint not in (NO_DEFAULT, int):
                raise _fail(fn_name, f"the special parameter 'timestamp' is an int (ms), not {hint!r}")
            params.append((param.name, Role.TIMESTAMP, keyword))
        elif param.name == "config":
            config_type = _split_annotated(fn_name, "config", hint)[0]
            _check_config_type(fn_name, config_type)
            params.append((param.name, Role.CONFIG, keyword))
        elif param.name == "state":
            state_type = _split_annotated(fn_name, "state", hint)[0]
            if state_type is NO_DEFAULT or not callable(state_type):
                raise _fail(fn_name, "the special parameter 'state' needs a type constructible with no "
                                     "arguments as its annotation (a dataclass, dict, ...)")
            state_factory = state_type
            params.append((param.name, Role.STATE, keyword))
        else:
            base, metadata, io_map = _split_annotated(fn_name, param.name, Any if hint is NO_DEFAULT else hint)
            raw_inputs.append((param.name, base, metadata, io_map, param.default))
            params.append((param.name, Role.INPUT, keyword))

    fields = _user_field_names(config_type) if config_type is not None else ()
    inputs = []
    for port, base, metadata, io_map, default in raw_inputs:
        convert = _check_type(fn_name, f"parameter {port!r}", base)
        _check_io_map(fn_name, f"parameter {port!r}", io_map, fields, config_type is not None)
        inputs.append(InputSpec(port, _port(base, metadata), convert, default, io_map))
    raw_outputs, tuple_return = _outputs(fn_name, hints)
    outputs = []
    for port, base, metadata, io_map in raw_outputs:
        _check_io_map(fn_name, port, io_map, fields, config_type is not None)
        outputs.append(OutputSpec(port, _port(base, metadata), io_map))
    return FnSignature(
        fn=fn, name=name, is_async=inspect.iscoroutinefunction(fn), thread_safe=thread_safe,
        params=tuple(params), inputs=tuple(inputs), outputs=tuple(outputs), tuple_return=tuple_return,
        config_type=config_type, config_fields=fields, state_factory=state_factory,
        Config=_config_model(name, getattr(fn, "__module__", __name__), config_type, len(inputs)),
    )
