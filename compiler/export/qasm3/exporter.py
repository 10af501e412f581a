"""OpenQASM 3 of a program's literal circuit, built as statements and then printed.

:func:`build_program` turns a program into the statements of
:mod:`compiler.export.qasm3.ast`; :func:`to_qasm3` prints them with
:mod:`compiler.export.qasm3.printer`. The qubits are one register ``q``: the lanes in spec
order, then the ancillas; qubit 0 is the most significant bit of a word (QRNN.md §1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np

from compiler.export.qasm3 import ast
from compiler.export.qasm3.printer import print_program
from compiler.export.text import cell_text, qubit_names
from compiler.ir import Angle, CompileError, GateDAG, Operation
from compiler.lower import decompose_neurons
from compiler.unroll import Program

__all__ = ["angle_expression", "build_program", "to_qasm3"]

# Comments that explain the conventions, after the title and the qubit names.
_CONVENTIONS = (
    "  (o: i/o lanes, h: workspace, a: ancillas); bit 0 of a word is on q[0] (MSB)",
    "RY(a) = exp(-i a Y / 2); angles are real radians, not reduced modulo 2 pi",
    "@qrnn.postselect V: keep the run only if this measurement gives V (0 on ancillas,",
    "  the target token's bit on i/o lanes) and renormalise; the qubit stays in use",
)
_TOKEN_NOTE = (
    "w<t>[b]: bit b of token t; assign before running (an `input bit` in OpenQASM 3,",
    "  declared plain here because qiskit's importer reads only float/angle inputs)",
)
_NAMES_PER_LINE = 12


def _literal(value: float) -> ast.FloatLiteral:
    if not math.isfinite(value):
        raise CompileError(f"angle {value!r} is not finite")
    return ast.FloatLiteral(float(value))


def angle_expression(angle: Angle, name: Callable[[int], str]) -> ast.Expression:
    """``const + coef * name(slot) …``, left to right; unit coefficients are ``+ x`` / ``- x``.

    The constant is left out when it is zero and there are terms; a leading negative term is
    ``-x`` or ``-c * x``; later ones are subtracted.

    Raises
    ------
    CompileError
        When the constant or a coefficient is not finite.
    """
    expr: ast.Expression | None = (
        _literal(angle.const) if angle.const != 0.0 or not angle.terms else None
    )
    for slot, coef in angle.terms:
        negative, magnitude, ident = coef < 0, abs(coef), ast.Identifier(name(slot))
        if expr is None and magnitude == 1.0:
            expr = ast.Negation(ident) if negative else ident
        elif expr is None:
            expr = ast.BinaryExpression(
                ast.BinaryOperator.MUL, _literal(-magnitude if negative else magnitude), ident
            )
        else:
            term = (
                ident
                if magnitude == 1.0
                else ast.BinaryExpression(ast.BinaryOperator.MUL, _literal(magnitude), ident)
            )
            op = ast.BinaryOperator.SUB if negative else ast.BinaryOperator.ADD
            expr = ast.BinaryExpression(op, expr, term)
    assert expr is not None  # a constant, or at least one term
    return expr


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


def _qubits(qubits: Sequence[int]) -> tuple[ast.IndexedIdentifier, ...]:
    return tuple(ast.IndexedIdentifier("q", q) for q in qubits)


def _bit(tokens: list[int], io: int, token: int, bit: int) -> int:
    """Bit ``bit`` (0 the most significant) of token ``token``."""
    return (tokens[token] >> (io - 1 - bit)) & 1


def _preamble(program: Program, dag: GateDAG) -> list[ast.Statement]:
    """Build the header: the standard gates, then comments (title, qubit names, conventions)."""
    spec, names = program.spec, qubit_names(dag)
    title = f"{json.dumps(spec.name)} " if spec.name else ""
    return [
        ast.Include("stdgates.inc"),
        ast.Comment(
            f"qrnn-tn program {title}({cell_text(spec)}), {program.steps} steps: literal circuit"
        ),
        *(
            ast.Comment(
                "qubits: "
                + ", ".join(
                    f"q[{q}] {names[q]}" for q in range(k, min(k + _NAMES_PER_LINE, len(names)))
                )
            )
            for k in range(0, len(names), _NAMES_PER_LINE)
        ),
        *map(ast.Comment, _CONVENTIONS),
    ]


def _declarations(
    program: Program, dag: GateDAG, symbolic: bool, tokens: list[int] | None
) -> list[ast.Statement]:
    """Declare the inputs for the slots the gates use, token registers, qubits and outcomes."""
    ops = dag.ops
    out: list[ast.Statement] = []
    used_slots = sorted(
        {s for op in ops if op.kind == "gate" and op.angle for s, _ in op.angle.terms}
    )
    if symbolic and used_slots:
        out.append(ast.Comment("theta_k is parameter slot k in canonical order (QRNN.md §5)"))
        out += [
            ast.InputDeclaration(ast.FloatType(64), f"theta_{k}", program.slots[k].name)
            for k in used_slots
        ]
    used_tokens = sorted(
        {
            op.bit.token if op.kind == "wordx" else op.token
            for op in ops
            if op.kind in ("wordx", "project")
        }
    )
    if tokens is None and used_tokens:
        out += map(ast.Comment, _TOKEN_NOTE)
        out += [
            ast.ClassicalDeclaration(ast.BitArrayType(program.io), f"w{t}") for t in used_tokens
        ]
    out.append(ast.QubitDeclaration("q", dag.n_qubits))
    n_post = sum(op.kind == "postselect" for op in ops)
    if n_post:
        out.append(
            ast.ClassicalDeclaration(
                ast.BitArrayType(n_post), "anc", "ancilla postselections, each must read 0"
            )
        )
    projections = sorted({op.token: len(op.qubits) for op in ops if op.kind == "project"}.items())
    out += [
        ast.ClassicalDeclaration(ast.BitArrayType(n), f"m{t}", f"projection onto token {t}")
        for t, n in projections
    ]
    return out


def _operation(
    op: Operation,
    angle: Callable[[Angle], ast.Expression],
    tokens: list[int] | None,
    io: int,
    post: int,
) -> list[ast.Statement]:
    """Build the statements of one operation; ``post`` indexes its ancilla outcome bit."""
    wires = _qubits(op.qubits)
    if op.kind == "gate" and op.name == "x":
        return [ast.GateCall("x", wires)]
    if op.kind == "gate" and op.name in ("ry", "mcry"):
        assert op.angle is not None  # a rotation gate carries its angle (Gate checks it)
        controls = len(op.qubits) - 1
        if controls == 1:
            return [ast.GateCall("cry", wires, (angle(op.angle),))]
        modifiers = (ast.ControlModifier(controls),) if controls else ()
        return [ast.GateCall("ry", wires, (angle(op.angle),), modifiers)]
    if op.kind == "wordx":
        if tokens is None:
            condition = ast.IndexedIdentifier(f"w{op.bit.token}", op.bit.bit)
            return [ast.IfStatement(condition, ast.GateCall("x", wires))]
        return [ast.GateCall("x", wires)] if _bit(tokens, io, op.bit.token, op.bit.bit) else []
    if op.kind == "postselect":
        annotation = ast.Annotation("qrnn.postselect", "0")
        return [ast.MeasureAssignment(ast.IndexedIdentifier("anc", post), wires[0], (annotation,))]
    if op.kind == "readout":
        where = ", ".join(f"q[{q}]" for q in op.qubits)
        return [
            ast.Comment(
                f"readout t={op.step}: distribution of the word on {where} "
                "(reading does not disturb the state)"
            ),
            ast.Barrier(wires),
        ]
    if op.kind == "project":
        value = "" if tokens is None else f" = {tokens[op.token]}"

        def outcome(j: int) -> str:
            return f"w{op.token}[{j}]" if tokens is None else str(_bit(tokens, io, op.token, j))

        return [
            ast.Comment(f"project: the i/o lanes must read token {op.token}{value}"),
            *(
                ast.MeasureAssignment(
                    ast.IndexedIdentifier(f"m{op.token}", j),
                    wire,
                    (ast.Annotation("qrnn.postselect", outcome(j)),),
                )
                for j, wire in enumerate(wires)
            ),
        ]
    raise CompileError(f"cannot export {op} to OpenQASM 3")


def build_program(
    program: Program,
    params: Sequence[float] | np.ndarray | None = None,
    words: Sequence[int] | None = None,
) -> ast.Program:
    """Build the OpenQASM 3 statements of the program's literal circuit (see :func:`to_qasm3`).

    Raises
    ------
    CompileError
        When ``params`` or ``words`` do not fit the program, or an angle is not finite.
    """
    dag = program.dag
    if any(op.kind == "neuron" for op in dag.ops):
        dag = decompose_neurons(dag)
    values = None if params is None else _check_params(params, program.n_params)
    tokens = None if words is None else _check_words(words, program)

    def angle(a: Angle) -> ast.Expression:
        if values is not None:
            return _literal(a.evaluate(values))
        return angle_expression(a, lambda slot: f"theta_{slot}")

    statements = _preamble(program, dag) + _declarations(program, dag, values is None, tokens)
    readouts = [i + 1 for i, op in enumerate(dag.ops) if op.kind == "readout"]
    starts = {start: t for t, start in enumerate([0, *readouts[:-1]])}
    post = 0
    for i, op in enumerate(dag.ops):
        if i in starts:
            step, target = starts[i], program.target_tokens[starts[i]]
            statements.append(
                ast.Comment(f"step {step}: reads token {step}, predicts token {target}")
            )
        statements += _operation(op, angle, tokens, program.io, post)
        post += op.kind == "postselect"
    return ast.Program("3.0", tuple(statements))


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
    return print_program(build_program(program, params, words))
