"""Program exports: lossless JSON, OpenQASM 3 of the literal circuit, Graphviz DOT, a summary.

Qubit 0 / bit 0 of a word is the most significant everywhere (QRNN.md §1); exports name the
qubits ``o<i>`` (i/o lanes), ``h<j>`` (workspace lanes) and ``a<k>`` (ancillas, after the lanes).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

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
from compiler.lower import decompose_neurons
from compiler.reach import reach
from compiler.spec import CellSpec, SpecError, load_spec
from compiler.unroll import Program

__all__ = [
    "FORMAT",
    "VERSION",
    "to_json",
    "from_json",
    "to_qasm3",
    "to_dot",
    "summary",
    "qubit_names",
]

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
_SLOT_KINDS = ("bias", "weight", "rotation")
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


class HasDescribe(Protocol):
    """Anything with a ``describe()`` text, e.g. a backend plan's ``Cost``."""

    def describe(self) -> str: ...


# --------------------------------------------------------------------------------------- JSON


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
    """The program as JSON text that :func:`from_json` reads back to an equal program.

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
        if index != i or not isinstance(name, str) or kind not in _SLOT_KINDS or len(slot) != 3:
            raise CompileError(
                f"{at}: got {slot!r}; expected {{'index': {i}, 'name': str, 'kind': one of "
                f"{', '.join(_SLOT_KINDS)}}}"
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


# ------------------------------------------------------------------------------ OpenQASM 3


def qubit_names(dag: GateDAG) -> list[str]:
    """``o<i>`` for i/o lanes, ``h<j>`` for workspace lanes, ``a<k>`` for ancillas."""
    return [
        f"o{q}" if q < dag.io else f"h{q - dag.io}" if q < dag.n_lanes else f"a{q - dag.n_lanes}"
        for q in range(dag.n_qubits)
    ]


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise CompileError(f"angle {value!r} is not finite")
    return repr(float(value))


def _symbolic(angle: Angle, name: Callable[[int], str]) -> str:
    """``const + coef * name(slot) …`` with unit coefficients written as ``+ x`` / ``- x``."""
    parts = [_number(angle.const)] if angle.const != 0.0 or not angle.terms else []
    for slot, coef in angle.terms:
        sign = "-" if coef < 0 else "+"
        term = name(slot) if abs(coef) == 1.0 else f"{_number(abs(coef))} * {name(slot)}"
        parts.append(f"{sign} {term}" if parts else f"{'-' if coef < 0 else ''}{term}")
    return " ".join(parts)


def _check_params(params: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(params, dtype=float).reshape(-1)
    if values.shape != (n,):
        raise CompileError(
            f"params: expected {n} values in canonical slot order, got {values.size}"
        )
    if not np.all(np.isfinite(values)):
        raise CompileError("params: every value must be finite")
    return values


def _check_words(words: Sequence[int], program: Program) -> list[int]:
    tokens = [int(w) for w in words]
    if len(tokens) != program.n_tokens:
        raise CompileError(
            f"words: expected the program's {program.n_tokens} tokens, got {len(tokens)}"
        )
    bad = [w for w in tokens if not 0 <= w < 2**program.io]
    if bad:
        raise CompileError(f"words: token {bad[0]} outside 0 … {2**program.io - 1} (io bits)")
    return tokens


def _topology_text(spec: CellSpec) -> str:
    topology = spec.neuron.topology
    if topology.kind == "local":
        site = ", i/o lanes one site" if topology.io == "site" else ""
        return f"local {topology.radius}{site}"
    return topology.kind


def _cell_text(spec: CellSpec) -> str:
    return (
        f"io {spec.io}, workspace {spec.workspace}, stages {spec.stages}; degree "
        f"{spec.neuron.degree}, order {spec.neuron.order}, topology {_topology_text(spec)}"
    )


def to_qasm3(
    program: Program,
    params: Sequence[float] | np.ndarray | None = None,
    words: Sequence[int] | None = None,
) -> str:
    """OpenQASM 3 of the literal circuit (neurons expanded into ancilla circuits).

    Parameters
    ----------
    program
        The program; neurons are decomposed with :func:`compiler.lower.decompose_neurons`.
    params
        Flat parameter vector in canonical slot order: angles are written as numbers.
        Without it each used slot ``k`` is an ``input float[64] theta_k`` (its slot name in a
        comment) and angles are expressions such as ``1.5707963267948966 + theta_3``.
    words
        The ``steps + 1`` tokens: input writes become plain ``x`` gates and the projections'
        required outcomes are numbers. Without them token ``t`` is a ``bit[io] w<t>`` register
        (plain, not ``input``: qiskit's importer accepts only float and angle inputs) and
        writes are ``if (w<t>[b]) x q[i];``.

    Notes
    -----
    One register ``q``: lanes, then ancillas. A multi-controlled RY is ``cry`` or
    ``ctrl(k) @ ry``. A postselection is a mid-circuit measurement annotated
    ``@qrnn.postselect V``: the run is kept only when the outcome is ``V`` (0 for ancillas;
    the target token's bit at a projection onto a word), and the state is renormalised. A
    readout does not disturb the state: it is a comment and a ``barrier`` on the i/o lanes.
    Angles are real radians, not reduced modulo 2π (the sign matters in controlled gates).
    """
    dag = program.dag
    if any(op.kind == "neuron" for op in dag.ops):
        dag = decompose_neurons(dag)
    values = None if params is None else _check_params(params, program.n_params)
    tokens = None if words is None else _check_words(words, program)
    names, spec, io = qubit_names(dag), program.spec, program.io
    slot_names = [s.name for s in program.slots]

    def angle(a: Angle) -> str:
        if values is not None:
            return _number(a.evaluate(values))
        return _symbolic(a, lambda slot: f"theta_{slot}")

    def token_bit(token: int, bit: int) -> str:
        return f"w{token}[{bit}]" if tokens is None else str((tokens[token] >> (io - 1 - bit)) & 1)

    used_slots = sorted(
        {s for op in dag.ops if op.kind == "gate" and op.angle for s, _ in op.angle.terms}
    )
    used_tokens = sorted(
        {
            op.bit.token if op.kind == "wordx" else op.token
            for op in dag.ops
            if op.kind in ("wordx", "project")
        }
    )
    projections = sorted(
        {op.token: len(op.qubits) for op in dag.ops if op.kind == "project"}.items()
    )
    n_post = sum(op.kind == "postselect" for op in dag.ops)
    title = f"{json.dumps(spec.name)} " if spec.name else ""
    out = [
        "OPENQASM 3.0;",
        'include "stdgates.inc";',
        f"// qrnn-tn program {title}({_cell_text(spec)}), {program.steps} steps: literal circuit",
        *(
            "// qubits: "
            + ", ".join(f"q[{q}] {names[q]}" for q in range(k, min(k + 12, len(names))))
            for k in range(0, len(names), 12)
        ),
        "//   (o: i/o lanes, h: workspace, a: ancillas); bit 0 of a word is on q[0] (MSB)",
        "// RY(a) = exp(-i a Y / 2); angles are real radians, not reduced modulo 2 pi",
        "// @qrnn.postselect V: keep the run only if this measurement gives V (0 on ancillas,",
        "//   the target token's bit on i/o lanes) and renormalise; the qubit stays in use",
    ]
    if values is None and used_slots:
        out.append("// theta_k is parameter slot k in canonical order (QRNN.md §5)")
        out += [f"input float[64] theta_{k};  // {slot_names[k]}" for k in used_slots]
    if tokens is None and used_tokens:
        out.append(
            "// w<t>[b]: bit b of token t; assign before running (an `input bit` in OpenQASM 3,"
        )
        out.append(
            "//   declared plain here because qiskit's importer reads only float/angle inputs)"
        )
        out += [f"bit[{io}] w{t};" for t in used_tokens]
    out.append(f"qubit[{dag.n_qubits}] q;")
    if n_post:
        out.append(f"bit[{n_post}] anc;  // ancilla postselections, each must read 0")
    out += [f"bit[{n}] m{t};  // projection onto token {t}" for t, n in projections]

    readouts = [i + 1 for i, op in enumerate(dag.ops) if op.kind == "readout"]
    starts = {start: t for t, start in enumerate([0, *readouts[:-1]])}
    post = 0
    for i, op in enumerate(dag.ops):
        if i in starts:
            target = program.target_tokens[starts[i]]
            out.append(f"// step {starts[i]}: reads token {starts[i]}, predicts token {target}")
        wires = ", ".join(f"q[{q}]" for q in op.qubits)
        if op.kind == "gate" and op.name == "x":
            out.append(f"x {wires};")
        elif op.kind == "gate" and op.name in ("ry", "mcry"):
            controls = len(op.qubits) - 1
            modifier = "c" if controls == 1 else f"ctrl({controls}) @ " if controls else ""
            out.append(f"{modifier}ry({angle(op.angle)}) {wires};")
        elif op.kind == "wordx" and tokens is None:
            out.append(f"if ({token_bit(op.bit.token, op.bit.bit)}) x {wires};")
        elif op.kind == "wordx":
            if token_bit(op.bit.token, op.bit.bit) == "1":
                out.append(f"x {wires};")
        elif op.kind == "postselect":
            out += ["@qrnn.postselect 0", f"anc[{post}] = measure {wires};"]
            post += 1
        elif op.kind == "readout":
            out.append(
                f"// readout t={op.step}: distribution of the word on {wires} "
                "(reading does not disturb the state)"
            )
            out.append(f"barrier {wires};")
        elif op.kind == "project":
            value = "" if tokens is None else f" = {tokens[op.token]}"
            out.append(f"// project: the i/o lanes must read token {op.token}{value}")
            for j, q in enumerate(op.qubits):
                out += [
                    f"@qrnn.postselect {token_bit(op.token, j)}",
                    f"m{op.token}[{j}] = measure q[{q}];",
                ]
        else:
            raise CompileError(f"cannot export {op} to OpenQASM 3")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------- DOT


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _op_label(op: Operation, names: list[str], slot_names: list[str]) -> str:
    wires = ",".join(names[q] for q in op.qubits)
    if op.kind == "gate" and op.angle is None:
        return f"{op.name.upper()} {wires}"
    if op.kind == "gate":
        text = _symbolic(
            Angle(float(f"{op.angle.const:.6g}"), op.angle.terms),
            lambda s: slot_names[s] if s < len(slot_names) else f"theta_{s}",
        )
        return f"{op.name.upper()}({text}) {wires}"
    if op.kind == "wordx":
        return f"X if w{op.bit.token}[{op.bit.bit}] {wires}"
    if op.kind == "neuron":
        sources = ",".join(names[q] for q in op.sources)
        return f"N {op.label or names[op.target]} ({sources})"
    if op.kind == "postselect":
        return f"postselect {wires}"
    if op.kind == "readout":
        return f"readout t={op.step} ({wires})"
    return f"project w{op.token} ({wires})"


def to_dot(program_or_dag: Program | GateDAG) -> str:
    """Graphviz DOT of the gate DAG: one node per operation, one edge per wire segment.

    Nodes ``n<i>`` follow the operation order and are labelled by the operation (slot names
    for angles); edges carry the qubit names they follow. The text is deterministic.
    """
    dag = program_or_dag.dag if isinstance(program_or_dag, Program) else program_or_dag
    names, slot_names = qubit_names(dag), [s.name for s in dag.slots]
    lines = ["digraph qrnn {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for i, op in enumerate(dag.ops):
        lines.append(f'  n{i} [label="{_dot_escape(_op_label(op, names, slot_names))}"];')
    for u, v, data in sorted(dag.graph.edges(data=True), key=lambda e: (e[0], e[1])):
        label = ",".join(names[q] for q in data["wires"])
        lines.append(f'  n{u} -> n{v} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- summary


def summary(program: Program, cost: HasDescribe | None = None) -> str:
    """A plain-text account of the program (as opt_einsum's ``PathInfo``).

    It ends with what the readouts can see (:func:`compiler.reach.reach`): per input bit,
    whether a neuron reads it and from how many steps back it can change a readout.

    Parameters
    ----------
    program
        The program; its :meth:`~compiler.unroll.Program.stats` are printed.
    cost
        Optional object with ``describe()`` (a backend plan's ``Cost``), appended.
    """
    stats = program.stats()
    spec = program.spec
    kinds = Counter(slot.kind for slot in program.slots)
    by_kind = ", ".join(f"{kinds[k]} {k}" for k in _SLOT_KINDS if kinds[k])
    literal = stats["literal_operations"]
    rows = [
        ("Cell", _cell_text(spec)),
        ("Steps", f"{stats['steps']} (sequences of {program.n_tokens} tokens)"),
        (
            "Logical qubits",
            f"{stats['logical_qubits']} ({stats['io']} i/o + {stats['workspace']} workspace)",
        ),
        ("Ancillas (literal)", str(stats["ancillas"])),
        ("Parameters", f"{stats['parameters']} ({by_kind})" if by_kind else "0"),
        ("Operations", str(sum(stats["operations"].values()))),
        *((f"  {kind.replace(':', ' ')}", str(n)) for kind, n in stats["operations"].items()),
        ("Depth", str(stats["depth"])),
        ("Multi-qubit operations", str(stats["multi_qubit_ops"])),
        (
            "Literal circuit",
            f"{stats['logical_qubits'] + stats['ancillas']} qubits, "
            f"{sum(literal.values())} operations, "
            f"{stats['literal_multi_qubit_gates']} multi-qubit gates",
        ),
        *((f"  {kind.replace(':', ' ')}", str(n)) for kind, n in literal.items()),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"QRNN program {spec.name!r}" if spec.name else "QRNN program"]
    lines += [f"  {label + ':':<{width}}{value}" for label, value in rows]
    lines += ["", str(reach(program))]
    if cost is not None:
        lines += ["", cost.describe()]
    return "\n".join(lines) + "\n"
