"""OpenQASM 3 of a program's literal circuit (neurons expanded into ancilla circuits).

The qubits are one register ``q``: the lanes in spec order, then the ancillas; qubit 0 is the
most significant bit of a word (QRNN.md §1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from compiler.export.text import cell_text, number, qubit_names, symbolic
from compiler.ir import Angle, CompileError
from compiler.lower import decompose_neurons
from compiler.unroll import Program

__all__ = ["to_qasm3"]


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
            return number(a.evaluate(values))
        return symbolic(a, lambda slot: f"theta_{slot}")

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
        f"// qrnn-tn program {title}({cell_text(spec)}), {program.steps} steps: literal circuit",
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
