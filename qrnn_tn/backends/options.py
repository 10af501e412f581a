"""Typed backend options: one frozen dataclass per backend, validated once where they enter.

Each backend reads its own options class (:class:`StatevectorOptions`,
:class:`TensorNetOptions`, :class:`MPSOptions`); :data:`OPTIONS_BY_BACKEND` maps backend
names to these classes, so the accepted keys, the command line's help and the docs' options
table all come from the fields below. Values are coerced from what a command line passes
(``"False"``, ``"1e-3"``, ``"32"``, ``"none"``) and checked against each field's range;
anything else is a :class:`~qrnn_tn.errors.BackendError` naming the option, the value
and what is accepted.

Users write options either as a flat mapping (``{"max_bond": 32}``; with
``backend="auto"`` each backend receives the keys it reads) or as the typed objects
(``MPSOptions(max_bond=32)``); :func:`resolve_backend_options` turns both into a tuple of
typed objects, one per backend that was given any.

Examples
--------
>>> MPSOptions.from_mapping({"max_bond": "32", "checkpoint_outer": "auto"}).max_bond
32
>>> resolve_backend_options({"checkpoint": "False"}, "tensornet")[0].checkpoint
False
"""

from __future__ import annotations

import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import numpy as np

from qrnn_tn.errors import BackendError

__all__ = [
    "SpecificOptions",
    "StatevectorOptions",
    "TensorNetOptions",
    "MPSOptions",
    "OPTIONS_BY_BACKEND",
    "OptionsInput",
    "default_cache_dir",
    "resolve_backend_options",
    "options_as_dict",
    "describe_options",
]


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


def default_cache_dir() -> Path:
    """``$QRNN_TN_CACHE`` or ``~/.cache/qrnn-tn/paths``: where contraction paths are kept."""
    env = os.environ.get("QRNN_TN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "qrnn-tn" / "paths"


def _option(default: Any = MISSING, *, help: str, low: float | None = None, **kw: Any) -> Any:
    """Return a dataclass field with its help text and inclusive lower bound (``low``)."""
    metadata = {"help": help, "low": low}
    if "default_factory" in kw:
        return field(default_factory=kw.pop("default_factory"), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


def _type_words(hint: Any) -> str:
    """Say what a type hint accepts, in words (for error messages and the options table)."""
    words = _alternatives(hint)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _alternatives(hint: Any) -> list[str]:
    if hint is type(None):
        return ["none"]
    named = {
        Any: "a Python object",
        object: "an executor",
        int: "an integer",
        float: "a finite number",
    }
    if hint is bool:
        return ["true", "false"]
    if hint in named:
        return [named[hint]]
    if hint is Path:
        return ["a directory path"]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return [repr(a) for a in args]
    if origin in (Union, types.UnionType):
        none_last = sorted(args, key=lambda a: a is type(None))
        return [word for arg in none_last for word in _alternatives(arg)]
    return [getattr(hint, "__name__", str(hint))]


def _coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` as the type ``hint`` names, else raise ``ValueError``.

    Strings are parsed (``"none"``, ``"False"``, ``"32"``, ``"1e-3"``); a union tries its
    members in order, a literal matches its values (text case-insensitively).
    """
    if hint is Any:
        return value
    if hint is object:  # an executor or client object: anything but plain data
        if isinstance(value, (str, bytes, numbers.Number, list, tuple, dict, set)) or value is None:
            raise ValueError
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    text = value.strip().lower() if isinstance(value, str) else None
    if origin in (Union, types.UnionType):
        return _coerce_union(value, text, args)
    if origin is Literal:
        for arg in args:
            if value == arg or (text is not None and text == str(arg).lower()):
                return arg
        raise ValueError
    scalar = _SCALARS.get(hint)
    if scalar is None:
        raise TypeError(f"no coercion for the option type {hint!r}")
    return scalar(value, text)


def _coerce_union(value: Any, text: str | None, args: tuple[Any, ...]) -> Any:
    """Return ``value`` as the first member of a union that accepts it (``None`` first)."""
    if type(None) in args and (value is None or text in _NONE):
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg)
        except ValueError:
            continue
    raise ValueError


def _coerce_bool(value: Any, text: str | None) -> bool:
    """Return a boolean, or the boolean a text names (``true``, ``no``, ...)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError


def _coerce_int(value: Any, text: str | None) -> int:
    """Return an integer (not a boolean), or the integer a text of digits names."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if text is not None and text.lstrip("+-").isdigit() and len(text) <= 40:
        return int(text)
    raise ValueError


def _coerce_float(value: Any, text: str | None) -> float:
    """Return a finite real number (not a boolean), or the one a text names."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif text is not None and len(text) <= 64:
        number = float(text)  # ValueError for text that is not a number
    else:
        raise ValueError
    if not math.isfinite(number):
        raise ValueError
    return number


def _coerce_path(value: Any, text: str | None) -> Path:
    """Return a path from a non-blank string or path-like object."""
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return Path(value)
    raise ValueError


#: Coercion of each scalar option type: ``(value, stripped lower-case text or None)``.
_SCALARS: dict[Any, Callable[[Any, str | None], Any]] = {
    bool: _coerce_bool,
    int: _coerce_int,
    float: _coerce_float,
    Path: _coerce_path,
}


@dataclass(frozen=True)
class SpecificOptions:
    """Base of the per-backend options: coercion and checks on construction.

    A subclass sets :attr:`backend` and declares its fields with a ``help`` text and,
    for numbers, an inclusive lower bound ``low``.
    """

    backend: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Coerce every field to its declared type and check its lower bound."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            raw = getattr(self, f.name)
            try:
                value = _coerce(raw, hints[f.name])
            except (ValueError, OverflowError):
                value = None
                ok = False
            else:
                low = f.metadata.get("low")
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                ok = low is None or not number or value >= low
            if not ok:
                accepted = _accepted(f, hints[f.name])
                raise BackendError(
                    f"backend option {f.name}={_short(raw)} is not accepted by the "
                    f"{self.backend} backend: expected {accepted} ({f.metadata['help']})"
                )
            object.__setattr__(self, f.name, value)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Return the option names this backend reads."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SpecificOptions:
        """Return the options in ``values`` (strings are parsed); an unknown key is an error."""
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise BackendError(
                f"unknown backend option(s) {', '.join(unknown)} for the {cls.backend} "
                f"backend; accepted: {', '.join(cls.keys())}"
            )
        return cls(**values)


def _accepted(f: Any, hint: Any) -> str:
    """Say what field ``f`` accepts, in words, with its lower bound."""
    words = _type_words(hint)
    low = f.metadata.get("low")
    if low is None:
        return words
    words = words.replace("an integer", f"an integer >= {low:g}")
    return words.replace("a finite number", f"a finite number >= {low:g}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class StatevectorOptions(SpecificOptions):
    """Options of the exact statevector backend (:mod:`qrnn_tn.backends.statevector`)."""

    backend: ClassVar[str] = "statevector"

    gradient: Literal["recompute", "autograd"] = _option(
        "recompute",
        help="'recompute': exact adjoints replayed from checkpoints (lean memory); "
        "'autograd': plain autograd over the same kernels, every intermediate kept",
    )
    segment: int | None = _option(
        None, low=1, help="kernels per checkpoint segment (default: the square root of their count)"
    )
    cache_tables: bool | None = _option(
        None,
        help="build each neuron table once per run (true) or at every use (false); default: "
        "once, while twice the tables take under a quarter of the memory budget",
    )
    fuse: bool | None = _option(
        None,
        help="force fused blocks on or off; default: the cost model decides (real dtypes only)",
    )


@dataclass(frozen=True)
class TensorNetOptions(SpecificOptions):
    """Options of the exact tensor-network backend (:mod:`qrnn_tn.backends.tensornet`)."""

    backend: ClassVar[str] = "tensornet"

    cache_dir: Path | None = _option(
        default_factory=default_cache_dir,
        help="directory of the contraction-path cache ($QRNN_TN_CACHE or "
        "~/.cache/qrnn-tn/paths by default); none keeps paths in memory only",
    )
    search_time: float = _option(
        5.0, low=0.0, help="seconds of hyper-optimiser search per wide network (0: greedy only)"
    )
    neuron_form: Literal["auto", "hyper", "literal"] = _option(
        "auto",
        help="how a neuron enters the network: 'hyper' (one tensor over its sources), "
        "'literal' (its gates), 'auto' (the cheaper)",
    )
    max_slices: int = _option(
        4096, low=1, help="most slices a step may be cut into to fit the memory budget"
    )
    checkpoint: bool = _option(
        True, help="recompute each step's contraction in the backward instead of keeping it"
    )
    parallel: bool | int | Literal["auto", "dask", "ray"] | object = _option(
        False,
        low=1,
        compare=False,
        help="where the path search runs its trials: false (this process), a number of "
        "worker processes, 'auto', or (from Python) a dask.distributed.Client or "
        "concurrent.futures executor; handed to cotengra's HyperOptimizer",
    )


@dataclass(frozen=True)
class MPSOptions(SpecificOptions):
    """Options of the bounded-bond MPS backend (:mod:`qrnn_tn.backends.mps`)."""

    backend: ClassVar[str] = "mps"

    max_bond: int | None = _option(
        None, low=1, help="bond cap; none keeps every bond exact (reported as approximate if set)"
    )
    cutoff: float | None = _option(
        None,
        low=0.0,
        help="drop singular values below cutoff * s_max; default: numerical zeros only "
        "(1e-14 in float64, 1e-7 in float32)",
    )
    max_window: int = _option(
        10, low=1, help="widest neuron window contracted directly; wider ones are gathered by swaps"
    )
    checkpoint_steps: int = _option(
        1, low=0, help="steps per checkpoint block in the backward (0: keep every step's graph)"
    )
    checkpoint_outer: int | Literal["auto"] = _option(
        "auto",
        low=0,
        help="steps per outer checkpoint block (0: one level); 'auto' picks the longest "
        "that fits the memory budget",
    )
    threads: int | None = _option(
        None,
        low=1,
        help="intra-op threads of a run and of its backward pass, the caller's torch setting "
        "restored afterwards; none: one thread while bonds are capped at 32 or less (small "
        "operators run fastest on one, several times faster on a busy machine), else "
        "torch's current setting",
    )


#: Backend name → its options class. :func:`~qrnn_tn.backends.base.register_backend`
#: adds the classes of backends registered later.
OPTIONS_BY_BACKEND: dict[str, type[SpecificOptions]] = {
    cls.backend: cls for cls in (StatevectorOptions, TensorNetOptions, MPSOptions)
}

#: What callers may pass as backend options.
OptionsInput = Mapping[str, Any] | SpecificOptions | Sequence[SpecificOptions] | None


def resolve_backend_options(
    values: OptionsInput, backend: str = "auto"
) -> tuple[SpecificOptions, ...]:
    """Typed options for ``backend`` (``"auto"``: for every backend that reads them).

    ``values`` is a flat mapping of option names to values (strings are parsed, e.g.
    ``{"max_bond": "32"}``), one typed options object, or a sequence of them. Returns one
    object per backend given any option, in backend-name order. Raises
    :class:`~qrnn_tn.errors.BackendError` for an unknown backend, a key no candidate backend reads,
    a value out of range, or a typed object of another backend.
    """
    if backend != "auto" and backend not in OPTIONS_BY_BACKEND:
        raise BackendError(
            f"unknown backend {backend!r}; available: {', '.join(sorted(OPTIONS_BY_BACKEND))}"
        )
    names = sorted(OPTIONS_BY_BACKEND) if backend == "auto" else [backend]
    if values is None:
        return ()
    if isinstance(values, SpecificOptions):
        values = [values]
    if isinstance(values, Mapping):
        return _from_mapping(values, names)
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise BackendError(
            f"backend options must be a mapping of option names to values or typed options "
            f"objects; got {type(values).__name__}"
        )
    objects: dict[str, SpecificOptions] = {}
    for obj in values:
        if not isinstance(obj, SpecificOptions) or obj.backend not in names:
            allowed = ", ".join(OPTIONS_BY_BACKEND[n].__name__ for n in names)
            raise BackendError(f"backend options {obj!r} do not apply here; use {allowed}")
        if obj.backend in objects:
            raise BackendError(f"two option objects for the {obj.backend} backend")
        objects[obj.backend] = obj
    return tuple(objects[n] for n in sorted(objects))


def _from_mapping(values: Mapping[str, Any], names: list[str]) -> tuple[SpecificOptions, ...]:
    keys = {n: OPTIONS_BY_BACKEND[n].keys() for n in names}
    unknown = sorted(str(k) for k in values if not any(k in keys[n] for n in names))
    if unknown:
        accepted = "; ".join(f"{n}: {', '.join(keys[n]) or 'none'}" for n in names)
        raise BackendError(f"unknown backend option(s) {', '.join(unknown)}; accepted: {accepted}")
    objects = []
    for name in names:
        own = {k: v for k, v in values.items() if k in keys[name]}
        if own:
            objects.append(OPTIONS_BY_BACKEND[name].from_mapping(own))
    return tuple(objects)


def options_as_dict(objects: Sequence[SpecificOptions]) -> dict[str, Any]:
    """Return the options that differ from their defaults, as JSON values (paths as text).

    The inverse of :func:`resolve_backend_options` for a run's configuration file.
    """
    out: dict[str, Any] = {}
    for obj in objects:
        defaults = type(obj)()
        for f in fields(obj):
            value = getattr(obj, f.name)
            if value is not getattr(defaults, f.name) and value != getattr(defaults, f.name):
                out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def describe_options(backends: Sequence[str] | None = None) -> list[tuple[str, str, str, str, str]]:
    """Rows ``(backend, option, accepts, default, meaning)`` for help texts and the docs."""
    rows = []
    for name in backends or sorted(OPTIONS_BY_BACKEND):
        cls = OPTIONS_BY_BACKEND[name]
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.default is not MISSING:
                default = "none" if f.default is None else repr(f.default)
            else:
                default = "see meaning"
            rows.append((name, f.name, _accepted(f, hints[f.name]), default, f.metadata["help"]))
    return rows
