"""Lossless JSON of a program: :func:`to_json` writes it, :func:`from_json` reads it back."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from compiler.export.text import SLOT_KINDS
from compiler.ir import (
    Angle,
    CompileError,
    Gate,
    GateDAG,
    Neuron,
    Operation,
    Postselect,
    Project,
    Readout,
    Slot,
    WordBit,
    WordX,
)
from compiler.spec import SpecError, load_spec
from compiler.unroll import Program

__all__ = ["FORMAT", "VERSION", "to_json", "from_json"]

#: Format tag and version of the JSON written by :func:`to_json`.
FORMAT, VERSION = "qrnn-tn.program", 1

# Fields of each operation kind in the JSON form, with their value type.
_OP_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "gate": (("name", "str"), ("qubits", "ints"), ("angle", "angle")),
    "wordx": (("qubit", "int"), ("token", "int"), ("bit", "int")),
    "neuron": (
        ("target", "int"),
        ("sources", "ints"),
        ("subsets", "subsets"),
        ("slots", "ints"),
        ("order", "int"),
        ("offset", "float"),
        ("label", "str"),
    ),
    "postselect": (("qubit", "int"),),
    "readout": (("qubits", "ints"), ("step", "int")),
    "project": (("qubits", "ints"), ("token", "int")),
}
_OP_CLASSES: dict[str, type] = {
    "gate": Gate,
    "neuron": Neuron,
    "postselect": Postselect,
    "readout": Readout,
    "project": Project,
}
_HEADER_KEYS = (
    "format",
    "version",
    "spec",
    "steps",
    "n_lanes",
    "n_qubits",
    "io",
    "separate_targets",
    "slots",
    "ops",
)


def _op_to_json(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": op.kind}
    if op.kind == "wordx":
        return {**out, "qubit": op.qubit, "token": op.bit.token, "bit": op.bit.bit}
    for name, kind in _OP_FIELDS[op.kind]:
        value = getattr(op, name)
        if kind == "angle":
            value = None if value is None else {"const": value.const, "terms": value.terms}
        out[name] = value
    return out


def _json_list(items: Sequence[Any]) -> str:
    if not items:
        return "[]"
    return "[\n" + ",\n".join(f"    {json.dumps(item)}" for item in items) + "\n  ]"


def to_json(program: Program) -> str:
    """Write the program as JSON text that :func:`from_json` reads back to an equal program.

    Floats are written with ``repr`` precision, so every angle survives the round trip
    exactly. One operation per line.
    """
    header = {
        "format": FORMAT,
        "version": VERSION,
        "spec": program.spec.to_dict(),
        "steps": program.steps,
        "n_lanes": program.n_lanes,
        "n_qubits": program.dag.n_qubits,
        "io": program.io,
        "separate_targets": program.separate_targets,
    }
    slots = [{"index": s.index, "name": s.name, "kind": s.kind} for s in program.slots]
    fields = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in header.items()]
    fields.append(f'  "slots": {_json_list(slots)}')
    fields.append(f'  "ops": {_json_list([_op_to_json(op) for op in program.ops])}')
    return "{\n" + ",\n".join(fields) + "\n}\n"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _field(table: Any, key: str, where: str) -> Any:
    if not isinstance(table, dict):
        raise CompileError(f"{where}: expected a JSON object, got {type(table).__name__}")
    if key not in table:
        raise CompileError(f"{where}: missing field {key!r}")
    return table[key]


def _convert(value: Any, kind: str, where: str) -> Any:
    """Check a JSON value against a field type and build the IR value."""
    if kind == "int" and _is_int(value):
        return value
    if kind == "float" and _is_number(value):
        return float(value)
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "ints" and isinstance(value, list) and all(map(_is_int, value)):
        return tuple(value)
    if kind == "subsets" and isinstance(value, list):
        return tuple(_convert(s, "ints", where) for s in value)
    if kind == "angle" and value is None:
        return None
    if kind == "angle" and isinstance(value, dict) and set(value) == {"const", "terms"}:
        terms = value["terms"]
        if (
            _is_number(value["const"])
            and isinstance(terms, list)
            and all(
                isinstance(t, list) and len(t) == 2 and _is_int(t[0]) and _is_number(t[1])
                for t in terms
            )
        ):
            return Angle(float(value["const"]), tuple((s, float(c)) for s, c in terms))
    expected = {
        "int": "an integer",
        "float": "a finite number",
        "str": "a string",
        "ints": "a list of integers",
        "subsets": "a list of lists of integers",
        "angle": "null or an angle {'const': number, 'terms': [[slot, coef], ...]}",
    }[kind]
    raise CompileError(f"{where}: got {value!r}; expected {expected}")


def _op_from_json(
    data: Any, where: str, n_slots: int, n_tokens: int, steps: int, io: int
) -> Operation:
    kind = _field(data, "kind", where)
    if kind not in _OP_FIELDS:
        raise CompileError(f"{where}: unknown op kind {kind!r}; known: {', '.join(_OP_FIELDS)}")
    where = f"{where} ({kind})"
    fields = {
        name: _convert(_field(data, name, where), t, f"{where}.{name}")
        for name, t in _OP_FIELDS[kind]
    }
    extra = sorted(set(data) - set(fields) - {"kind"})
    if extra:
        raise CompileError(f"{where}: unknown fields {extra}")
    slots = fields.get("slots", ())
    if fields.get("angle") is not None:
        slots = [slot for slot, _ in fields["angle"].terms]
    if any(not 0 <= s < n_slots for s in slots):
        raise CompileError(f"{where}: refers to a slot outside 0 … {n_slots - 1}")
    token = fields.get("token")
    if token is not None and not 0 <= token < n_tokens:
        raise CompileError(
            f"{where}: token {token} outside 0 … {n_tokens - 1} (the program's tokens)"
        )
    if kind == "readout" and not 0 <= fields["step"] < steps:
        raise CompileError(f"{where}: step {fields['step']} outside 0 … {steps - 1}")
    if kind == "project" and len(fields["qubits"]) != io:
        raise CompileError(f"{where}: projects {len(fields['qubits'])} qubits; a word has {io}")
    if kind == "neuron" and (len(fields["subsets"]) != len(slots) or fields["order"] < 1):
        raise CompileError(f"{where}: needs one slot per subset and order >= 1")
    try:
        if kind == "wordx":
            if token is None:
                raise CompileError(f"{where}: a wordx operation needs its token")
            if not 0 <= fields["bit"] < io:
                raise CompileError(f"{where}: bit {fields['bit']} outside 0 … {io - 1}")
            return WordX(fields["qubit"], WordBit(token, fields["bit"]))
        return _OP_CLASSES[kind](**fields)
    except CompileError as err:
        raise CompileError(f"{where}: {err}") from None


def from_json(text: str) -> Program:
    """Read a program written by :func:`to_json`.

    Raises
    ------
    CompileError
        When the text is not JSON, not a ``qrnn-tn.program`` of a known version, or a field
        is missing, unknown or of the wrong type (the message names it).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CompileError(f"program JSON: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        tag = data.get("format") if isinstance(data, dict) else None
        raise CompileError(f'program JSON: "format" is {tag!r}; expected {FORMAT!r}')
    if data.get("version") != VERSION:
        raise CompileError(
            f'program JSON: "version" is {data.get("version")!r}; this reader knows {VERSION}'
        )
    where = "program JSON"
    extra = sorted(set(data) - set(_HEADER_KEYS))
    if extra:
        raise CompileError(f"{where}: unknown fields {extra}")
    spec_data = _field(data, "spec", where)
    if not isinstance(spec_data, dict):
        raise CompileError(f"{where}.spec: expected a JSON object, got {spec_data!r}")
    try:
        spec = load_spec(spec_data)
    except SpecError as err:
        raise CompileError(f"{where}: spec: {err}") from None
    steps, n_lanes, n_qubits, io = (
        _convert(_field(data, key, where), "int", f"{where}.{key}")
        for key in ("steps", "n_lanes", "n_qubits", "io")
    )
    separate = data.get("separate_targets", False)
    if not isinstance(separate, bool):
        raise CompileError(f"{where}.separate_targets: got {separate!r}; expected true or false")
    if steps < 1 or (n_lanes, io) != (spec.n_lanes, spec.io) or n_qubits < n_lanes:
        raise CompileError(
            f"{where}: steps {steps}, n_lanes {n_lanes}, io {io}, n_qubits {n_qubits} do not "
            f"fit the spec ({spec.n_lanes} lanes, io {spec.io}; steps >= 1, n_qubits >= lanes)"
        )
    slots = _field(data, "slots", where)
    if not isinstance(slots, list) or len(slots) != spec.n_parameters():
        raise CompileError(f"{where}.slots: expected a list of {spec.n_parameters()} slots")
    table = []
    for i, slot in enumerate(slots):
        at = f"{where}.slots[{i}]"
        index, name, kind = (_field(slot, k, at) for k in ("index", "name", "kind"))
        if index != i or not isinstance(name, str) or kind not in SLOT_KINDS or len(slot) != 3:
            raise CompileError(
                f"{at}: got {slot!r}; expected {{'index': {i}, 'name': str, 'kind': one of "
                f"{', '.join(SLOT_KINDS)}}}"
            )
        table.append(Slot(index, name, kind))
    n_tokens = steps + 1 + (steps if separate else 0)
    ops = _field(data, "ops", where)
    if not isinstance(ops, list):
        raise CompileError(f"{where}.ops: expected a list of operations")
    dag = GateDAG(
        ops=tuple(
            _op_from_json(op, f"{where}.ops[{i}]", len(table), n_tokens, steps, io)
            for i, op in enumerate(ops)
        ),
        n_lanes=n_lanes,
        n_qubits=n_qubits,
        io=io,
        slots=tuple(table),
    )
    return Program(spec=spec, dag=dag, steps=steps, separate_targets=separate)
