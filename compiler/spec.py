"""Cell specifications: frozen dataclasses, loading from TOML/JSON/dict, strict validation.

The keys follow QRNN.md §8::

    name = "elman-xor"        # optional
    [cell]   io, workspace, stages
    [neuron] degree, order, topology, offset
    [init]   bias_std, weight_std, rotation_std

Topologies (QRNN.md §4): ``"all"``; ``{ local = r }``, a chain in lane order (i/o lanes first,
then workspace) where a neuron sees the lanes at most ``r`` away; ``{ local = r, io = "site" }``,
the same chain with the i/o register counted as one site at its head, so that every i/o lane
is a source of the first ``r`` workspace neurons (with plain ``local = 1`` the i/o lane 0
neighbours only lane 1, and no workspace neuron ever reads it); and ``{ custom = { g = [...] } }``.

Only ``cell.io`` and ``cell.workspace`` are required. Every error is a :class:`SpecError`
that names the key path, the bad value and what is accepted.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import Error

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = [
    "SpecError",
    "Topology",
    "NeuronSpec",
    "InitSpec",
    "CellSpec",
    "load_spec",
    "MAX_PARAMETERS",
    "LOCAL_IO",
]

#: Largest parameter table a spec may ask for (float64: 400 MB).
MAX_PARAMETERS = 50_000_000
#: Largest number of lanes a spec may ask for.
MAX_LANES = 4096
#: Largest magnitude of the offset β and the initial standard deviations: angles are
#: periodic, and larger values overflow float64 once the neuron sums its terms.
MAX_MAGNITUDE = 1e6
#: Deepest nesting of arrays/tables a spec file may have (a spec needs 4).
MAX_DEPTH = 32


class SpecError(Error, ValueError):
    """A cell spec is malformed; the message names the key path, the value and the fix."""

    def __init__(self, path: str, message: str, origin: str = ""):
        self.path = path
        self.message = message
        self.origin = origin
        text = f"{path}: {message}" if path else message
        super().__init__(f"{origin}: {text}" if origin else text)


@dataclass(frozen=True)
class Topology:
    """Which lanes feed a neuron (QRNN.md §4).

    ``kind`` is ``"all"``, ``"local"`` (with ``radius`` r) or ``"custom"`` (with
    ``sources``, one sorted tuple of source lanes per lane, indexed by target lane).
    A local chain measures distance in *sites*: with ``io = "lanes"`` (the default) every lane
    is a site of its own; with ``io = "site"`` the ``I`` i/o lanes together form site 0 and
    workspace lane ``h_j`` is site ``j + 1``, so the i/o lanes see each other and the first
    ``r`` workspace lanes, and those see every i/o lane.
    """

    kind: str = "all"
    radius: int | None = None
    sources: tuple[tuple[int, ...], ...] | None = None
    io: str = "lanes"

    def _radius(self) -> int:
        """Return the radius of a local chain (an error if it has none)."""
        if self.radius is None:
            raise SpecError("neuron.topology", "a local topology needs a radius: { local = r }")
        return self.radius

    def _sources(self) -> tuple[tuple[int, ...], ...]:
        """Return the source lists of a custom topology (an error if it has none)."""
        if self.sources is None:
            raise SpecError(
                "neuron.topology", "a custom topology needs { custom = { lane = [sources] } }"
            )
        return self.sources

    def sources_of(self, target: int, n_lanes: int, io: int = 0) -> tuple[int, ...]:
        """Source lanes of the neuron on ``target``, sorted.

        ``n_lanes`` is the cell's lane count and ``io`` its i/o lane count (needed only by a
        local chain with ``io = "site"``).
        """
        if self.kind == "all":
            return tuple(q for q in range(n_lanes) if q != target)
        if self.kind == "local":
            site = (lambda q: 0 if q < io else q - io + 1) if self.io == "site" else (lambda q: q)
            here, radius = site(target), self._radius()
            return tuple(q for q in range(n_lanes) if q != target and abs(site(q) - here) <= radius)
        return self._sources()[target]

    def to_value(self) -> Any:
        """Return the spec-file value of this topology."""
        if self.kind == "all":
            return "all"
        if self.kind == "local":
            return {"local": self.radius} | ({"io": self.io} if self.io != "lanes" else {})
        return {"custom": {str(g): list(s) for g, s in enumerate(self._sources())}}

    def describe(self) -> str:
        """Return the topology as written in a TOML spec, e.g. ``{ local = 1, io = "site" }``."""
        if self.kind == "all":
            return '"all"'
        if self.kind == "local":
            extra = f', io = "{self.io}"' if self.io != "lanes" else ""
            return f"{{ local = {self.radius}{extra} }}"
        return "{ custom = … }"


@dataclass(frozen=True)
class NeuronSpec:
    """Neuron settings shared by every neuron of the cell (QRNN.md §2)."""

    degree: int = 2
    order: int = 2
    topology: Topology = field(default_factory=Topology)
    offset: float = math.pi / 2


@dataclass(frozen=True)
class InitSpec:
    """Standard deviations of the normal initialisation (QRNN.md §5)."""

    bias_std: float = 0.1
    weight_std: float = 0.01
    rotation_std: float = 0.01


@dataclass(frozen=True)
class CellSpec:
    """A validated QRNN cell: ``io`` i/o lanes, ``workspace`` lanes, ``stages`` work stages."""

    io: int
    workspace: int
    stages: int = 1
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    init: InitSpec = field(default_factory=InitSpec)
    name: str = ""

    @property
    def n_lanes(self) -> int:
        """Logical qubits ``n = I + H``."""
        return self.io + self.workspace

    def lane_name(self, lane: int) -> str:
        """``o<i>`` for i/o lanes, ``h<j>`` for workspace lanes."""
        return f"o{lane}" if lane < self.io else f"h{lane - self.io}"

    def sources_of(self, target: int) -> tuple[int, ...]:
        """Source lanes of the neuron on ``target``."""
        return self.neuron.topology.sources_of(target, self.n_lanes, self.io)

    def n_parameters(self) -> int:
        """Count the trainable parameters (QRNN.md §5) without building tables."""
        return parameter_count(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a plain dict that :func:`load_spec` reads back to an equal spec."""
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["cell"] = {"io": self.io, "workspace": self.workspace, "stages": self.stages}
        out["neuron"] = {
            "degree": self.neuron.degree,
            "order": self.neuron.order,
            "topology": self.neuron.topology.to_value(),
            "offset": self.neuron.offset,
        }
        out["init"] = {
            "bias_std": self.init.bias_std,
            "weight_std": self.init.weight_std,
            "rotation_std": self.init.rotation_std,
        }
        return out


def subsets_count(n_sources: int, degree: int, cap: int | None = None) -> int:
    """Return the number of subsets of at most ``degree`` of ``n_sources`` sources (θ_∅ included).

    With ``cap``, the sum stops as soon as it exceeds ``cap`` (the result is then some
    number above ``cap``), so a huge degree costs a few terms, not thousands of binomials.
    """
    total = 0
    for i in range(min(degree, n_sources) + 1):
        total += math.comb(n_sources, i)
        if cap is not None and total > cap:
            break
    return total


def source_counts(topology: Topology, n_lanes: int, io: int = 0) -> list[int]:
    """How many sources the neuron of each lane has (closed forms where there are some)."""
    if topology.kind == "all":
        return [n_lanes - 1] * n_lanes
    if topology.kind == "local" and topology.io == "lanes":
        r = topology._radius()
        return [min(n_lanes - 1, g + r) - max(0, g - r) for g in range(n_lanes)]
    if topology.kind == "local":
        return [len(topology.sources_of(g, n_lanes, io)) for g in range(n_lanes)]
    return [len(sources) for sources in topology._sources()]


def parameter_count(spec: CellSpec, cap: int | None = None) -> int:
    """Total slot count: every neuron's subsets plus the work-stage RY angles.

    Time linear in the lanes: one binomial sum per distinct source count. With ``cap``, the
    sums stop early and any result above ``cap`` only means "more than ``cap``".
    """
    d = spec.neuron.degree
    counts = source_counts(spec.neuron.topology, spec.n_lanes, spec.io)
    sums = {k: subsets_count(k, d, cap) for k in set(counts)}
    workspace = sum(sums[k] for k in counts[spec.io :])
    io = sum(sums[k] for k in counts[: spec.io])
    return (1 + spec.stages) * workspace + spec.stages * spec.workspace + io


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "cell": {"io": int, "workspace": int, "stages": int},
    "neuron": {"degree": int, "order": int, "topology": (str, dict), "offset": (int, float)},
    "init": {"bias_std": (int, float), "weight_std": (int, float), "rotation_std": (int, float)},
}
_TYPE_NAMES = {int: "an integer", str: "a string", dict: "a table", float: "a number"}


def _type_name(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if float in kinds:
        return "a number"
    return " or ".join(_TYPE_NAMES[k] for k in kinds)


def _check_type(path: str, value: Any, expected: type | tuple[type, ...]) -> None:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise SpecError(
            path, f"got {_short(value)} ({type(value).__name__}); expected {_type_name(expected)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(path, f"got {value!r}; expected a finite number")
    if isinstance(value, int) and float in kinds and abs(value) > MAX_MAGNITUDE:
        raise SpecError(path, f"got {_short(value)}; expected a number of magnitude <= 1e6")


def _short(value: Any) -> str:
    """``repr(value)`` cut to 60 characters (values may be huge integers or deep lists)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # more digits than int -> str allows; too deep
        text = f"a {type(value).__name__} too large to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_keys(path: str, table: Mapping[str, Any], allowed: list[str]) -> None:
    for key in table:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(where, f"unknown key; accepted keys here: {', '.join(allowed)}")


def _at_least(path: str, value: int, low: int) -> None:
    if value < low:
        raise SpecError(path, f"got {_short(value)}; must be >= {low}")


def _at_most(path: str, value: float, high: float) -> None:
    if value > high:
        raise SpecError(path, f"got {value:g}; must be at most {high:g} in magnitude")


#: Values of ``io`` in a local topology: each i/o lane its own site, or all of them one site.
LOCAL_IO = ("lanes", "site")


def _parse_local(value: Mapping[str, Any]) -> Topology:
    path = "neuron.topology"
    _check_keys(path, value, ["local", "io"])
    radius = value["local"]
    _check_type(f"{path}.local", radius, int)
    _at_least(f"{path}.local", radius, 1)
    io = value.get("io", "lanes")
    if io not in LOCAL_IO:
        raise SpecError(
            f"{path}.io",
            f'got {io!r}; accepted: "lanes" (each i/o lane is a site of the chain, the default) '
            'or "site" (the i/o lanes together are one site at the head of the chain, so every '
            "i/o lane feeds the first workspace neurons)",
        )
    return Topology(kind="local", radius=radius, io=io)


def _parse_topology(value: Any, n_lanes: int) -> Topology:
    path = "neuron.topology"
    accepted = (
        'accepted: "all", { local = r } with r >= 1 (optionally io = "site"), '
        "or { custom = { lane = [sources] } }"
    )
    if isinstance(value, str):
        if value != "all":
            raise SpecError(path, f"got {value!r}; {accepted}")
        return Topology()
    if "local" in value:
        return _parse_local(value)
    if "io" in value:
        raise SpecError(
            f"{path}.io", 'applies to a local chain only: write { local = r, io = "site" }'
        )
    if len(value) != 1 or next(iter(value)) != "custom":
        raise SpecError(path, f"got {value!r}; {accepted}")
    return _parse_custom(value["custom"], n_lanes)


def _parse_custom(arg: Any, n_lanes: int) -> Topology:
    """Parse ``{ custom = { lane = [sources] } }``: one source list for every lane."""
    path = "neuron.topology.custom"
    if not isinstance(arg, Mapping):
        raise SpecError(path, f"got {arg!r}; expected a table lane -> [source lanes]")
    sources: dict[int, tuple[int, ...]] = {}
    for key, lst in arg.items():
        where = f"{path}.{key}"
        lane = _parse_custom_lane(where, key, n_lanes)
        if lane in sources:
            raise SpecError(where, f"lane {lane} is listed twice")
        sources[lane] = _parse_custom_sources(where, lane, lst, n_lanes)
    missing = [g for g in range(n_lanes) if g not in sources]
    if missing:
        raise SpecError(
            path,
            f"no source list for lanes {missing}; every lane 0 … {n_lanes - 1} is the target of "
            "a neuron and needs a list (use [] for a bias-only neuron)",
        )
    return Topology(kind="custom", sources=tuple(sources[g] for g in range(n_lanes)))


def _parse_custom_lane(where: str, key: Any, n_lanes: int) -> int:
    """Parse the lane key of one ``lane = [sources]`` entry of a custom topology."""
    try:
        lane = int(key)
    except (TypeError, ValueError):
        raise SpecError(where, f"lane key {key!r} is not an integer lane index") from None
    if not 0 <= lane < n_lanes:
        raise SpecError(where, f"lane {lane} out of range; lanes are 0 … {n_lanes - 1}")
    return lane


def _parse_custom_sources(where: str, lane: int, lst: Any, n_lanes: int) -> tuple[int, ...]:
    """Check the source list of ``lane``: integer lanes in range, no self-loop, no repeats."""
    if not isinstance(lst, (list, tuple)):
        raise SpecError(where, f"got {lst!r}; expected a list of source lane indices")
    for src in lst:
        _check_type(where, src, int)
        if not 0 <= src < n_lanes:
            raise SpecError(where, f"source {src} out of range; lanes are 0 … {n_lanes - 1}")
        if src == lane:
            raise SpecError(where, f"lane {lane} lists itself as a source (self-loop)")
    if len(set(lst)) != len(lst):
        raise SpecError(where, f"duplicate sources in {list(lst)}")
    return tuple(sorted(lst))


def spec_from_dict(data: Mapping[str, Any]) -> CellSpec:
    """Validate a spec given as nested mappings and build the :class:`CellSpec`."""
    if not isinstance(data, Mapping):
        raise SpecError("", f"a spec is a table of tables; got {type(data).__name__}")
    _check_keys("", data, ["name", "cell", "neuron", "init"])
    tables: dict[str, Mapping[str, Any]] = {}
    for section, schema in _SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, Mapping):
            raise SpecError(section, f"got {_short(table)}; expected a table")
        _check_keys(section, table, list(schema))
        for key, value in table.items():
            _check_type(f"{section}.{key}", value, schema[key])
        tables[section] = table
    name = data.get("name", "")
    _check_type("name", name, str)

    cell = tables["cell"]
    for key in ("io", "workspace"):
        if key not in cell:
            raise SpecError(f"cell.{key}", "missing; it is required (an integer >= 1)")
    io, workspace, stages = cell["io"], cell["workspace"], cell.get("stages", 1)
    _at_least("cell.io", io, 1)
    _at_least("cell.workspace", workspace, 1)
    _at_least("cell.stages", stages, 0)
    if io + workspace > MAX_LANES:
        raise SpecError("cell", f"io + workspace = {io + workspace} lanes; at most {MAX_LANES}")
    if io > 30:
        raise SpecError("cell.io", f"got {io}; a readout over 2^{io} words needs io <= 30")
    if stages > 1000:
        raise SpecError("cell.stages", f"got {stages}; at most 1000")

    neuron = tables["neuron"]
    defaults = NeuronSpec()
    order = neuron.get("order", defaults.order)
    if not 1 <= order <= 4:
        raise SpecError("neuron.order", f"got {_short(order)}; accepted: 1, 2, 3 or 4")
    topology = _parse_topology(neuron.get("topology", "all"), io + workspace)
    n_lanes = io + workspace
    max_sources = max(source_counts(topology, n_lanes, io))
    degree = neuron.get("degree", min(defaults.degree, max(max_sources, 1)))
    if not 1 <= degree <= max(max_sources, 1):
        raise SpecError(
            "neuron.degree",
            f"got {_short(degree)}; must be between 1 and {max_sources}, the most sources any "
            "neuron has in this topology (a neuron with fewer sources uses all its subsets)",
        )
    offset = float(neuron.get("offset", defaults.offset))
    _at_most("neuron.offset", abs(offset), MAX_MAGNITUDE)

    init = tables["init"]
    stds = {k: float(init.get(k, getattr(InitSpec(), k))) for k in _SCHEMA["init"]}
    for key, value in stds.items():
        if value < 0:
            raise SpecError(f"init.{key}", f"got {value}; a standard deviation must be >= 0")
        _at_most(f"init.{key}", value, MAX_MAGNITUDE)

    spec = CellSpec(
        io=io,
        workspace=workspace,
        stages=stages,
        neuron=NeuronSpec(degree=degree, order=order, topology=topology, offset=offset),
        init=InitSpec(**stds),
        name=name,
    )
    count = parameter_count(spec, cap=MAX_PARAMETERS)
    if count > MAX_PARAMETERS:
        raise SpecError(
            "neuron.degree",
            f"this cell has more than {MAX_PARAMETERS:,} parameters (whose tables would not "
            "fit in memory); lower neuron.degree or use a local topology",
        )
    return spec


def load_spec(source: CellSpec | Mapping[str, Any] | str | Path) -> CellSpec:
    """Load and validate a cell spec.

    Parameters
    ----------
    source
        A :class:`CellSpec` (returned as is), a dict, a path to a ``.toml`` or ``.json``
        file, or the TOML/JSON text itself.

    Raises
    ------
    SpecError
        Naming the key path, the bad value and what is accepted.
    """
    if isinstance(source, CellSpec):
        return source
    if isinstance(source, Mapping):
        return spec_from_dict(source)
    if isinstance(source, Path) or (
        isinstance(source, str)
        and "\n" not in source
        and source.rstrip().endswith((".toml", ".json"))
    ):
        path = Path(source)
        if not path.is_file():
            raise SpecError("", f"spec file {str(path)!r} does not exist")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise SpecError(
                "", f"spec file {str(path)!r} is not UTF-8 text (byte {err.start}: {err.reason})"
            ) from None
        except OSError as err:
            raise SpecError("", f"spec file {str(path)!r} cannot be read: {err}") from None
        data = _parse_text(text, str(path), json_first=path.suffix == ".json")
        try:
            return spec_from_dict(data)
        except SpecError as err:
            raise SpecError(err.path, err.message, origin=f"spec file {str(path)!r}") from None
    if isinstance(source, str):
        return spec_from_dict(
            _parse_text(source, "<string>", json_first=source.lstrip()[:1] == "{")
        )
    raise SpecError(
        "", f"cannot load a spec from {type(source).__name__}; give a path, text or dict"
    )


def _parse_text(text: str, origin: str, *, json_first: bool) -> Mapping[str, Any]:
    """Return the document in ``text``; every failure of the parser is a :class:`SpecError`."""
    kind = "JSON" if json_first else "TOML"
    try:
        data = json.loads(text) if json_first else tomllib.loads(text)
    except RecursionError:
        raise SpecError("", f"{origin}: nesting too deep for a cell spec") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError("", f"{origin} is not valid {kind}: {err}") from None
    except (ValueError, OverflowError):  # int() refuses more than 4300 digits
        raise SpecError(
            "", f"{origin}: a number with too many digits (over 4300); no spec value needs that"
        ) from None
    depth = _depth(data)
    if depth > MAX_DEPTH:
        raise SpecError("", f"{origin}: nesting {depth} levels deep; a cell spec needs 4")
    return data


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of lists/dicts in ``value``, counted up to ``limit`` (no recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth >= limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
