"""A step's readout network as a :class:`quimb.tensor.TensorNetwork`, for quimb's own tools.

The network is the one the tensor-network backend contracts
(:mod:`~qrnn_tn.backends.tensornet.network`, filled by
:mod:`~qrnn_tn.backends.tensornet.values`): the ket of every operation up to readout ``step``
(earlier projections included), the same ket again as the bra, glued on every lane, with the
i/o lanes' final indices left open. Contracting it over everything but those indices gives the
unnormalised distribution ``p̃(w)`` of the step's word; ``p = p̃ / Σ_w p̃(w)`` is the
backend's ``probs[:, step]``.

Index names
    ``out{q}``        the readout bit of i/o lane ``q`` (``q = 0`` is the most significant bit
                      of the word, as everywhere in qrnn-tn); shared by ket and bra.
    ``batch``         the sequence index, only when ``words`` is a batch ``[batch, L]``.
    ``q{l}_k{n}``     an inner index of the ket on lane ``l`` (an ancilla counts as the lane
                      of its neuron's target); ``q{l}_b{n}`` its twin in the bra. The last
                      index of a workspace lane glues ket to bra and keeps its ``k`` name.

The network has hyperedges (a neuron's sources, a controlled gate's controls and the batch
index are shared by several tensors), so quimb needs the output indices spelled out:
``tn.contract(output_inds=readout_inds(tn))``; ``tn ^ all`` refuses a hyper network.

Tags of every tensor
    ``LANE{l}``       the lane it acts on (not on ``ONES``).
    ``STEP{s}``       the step whose operations (``program.segments()[s]``) put it in the
                      network; step ``s`` begins with the collapse of readout ``s - 1`` onto
                      its word, so that projection's ``CLOSE``/``START`` tensors carry
                      ``STEP{s}``.
    ``KET`` / ``BRA`` which half of ``⟨ψ|Π_w|ψ⟩`` it belongs to (not on ``ONES``).
    its kind          ``NEURON`` (``M(x)[out, in]``, diagonal in its sources), ``RY``,
                      ``MCRY``, ``X`` (gates), ``START`` (a wire's basis state, from the words
                      where it is an input or a projection), ``CLOSE`` (a projection or an
                      ancilla's postselection), ``WORDX`` (an input bit written mid-wire),
                      ``ONES`` (carries ``batch`` when nothing else does).

So ``tn.draw(color=["NEURON", "RY", "START", "CLOSE"])`` shows the operations and
``tn.draw(color=[f"LANE{l}" for l in range(program.n_lanes)])`` the lanes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import torch

from compiler.unroll import Program
from qrnn_tn.backends.base import BackendError, Plan, check_params, check_words
from qrnn_tn.backends.tensornet.network import BATCH, NEURON_FORMS, Leaf, StepNetwork, iter_networks
from qrnn_tn.backends.tensornet.values import LeafValues
from qrnn_tn.dtypes import parse_dtype

if TYPE_CHECKING:  # quimb takes a second or two to import: only when a network is built
    import quimb.tensor as qtn

__all__ = ["to_quimb", "readout_inds", "BATCH_IND", "ARRAYS"]

#: Name of the sequence index (present only for a batch of words).
BATCH_IND = "batch"
#: Array libraries the tensors can hold.
ARRAYS = ("torch", "numpy")
_OUT = re.compile(r"out(\d+)")


def to_quimb(
    program: Program | Plan,
    params: torch.Tensor | np.ndarray | list[float],
    words: torch.Tensor | np.ndarray | list,
    *,
    step: int = -1,
    arrays: str = "torch",
    dtype: str | torch.dtype = "float64",
    neuron_form: str | None = None,
) -> qtn.TensorNetwork:
    """Return the readout network of one step of ``program`` as a quimb tensor network.

    Parameters
    ----------
    program
        A compiled :class:`~compiler.unroll.Program`, or a prepared plan of any backend (its
        program; a tensor-network plan's neuron form too).
    params
        Parameters ``[n_params]`` in canonical slot order. A torch tensor that requires grad
        keeps its graph with ``arrays="torch"``: gradients flow through quimb's contraction.
    words
        One sequence ``[L]`` (the network then has no ``batch`` index) or a batch
        ``[batch, L]`` of tokens, ``L = program.n_tokens`` (``steps + 1``).
    step
        Which readout, ``0 … steps - 1``; negative counts from the end (default: the last).
    arrays
        ``"torch"`` or ``"numpy"`` (detached copies).
    dtype
        ``"float64"`` (default) or ``"float32"``; the model is real, so are the tensors.
    neuron_form
        ``"auto"``, ``"hyper"`` (one tensor per neuron) or ``"literal"`` (its ancilla circuit);
        default: the plan's, or ``"auto"`` for a program.

    Returns
    -------
    quimb.tensor.TensorNetwork
        Tensors tagged ``LANE{l}``, ``STEP{s}``, ``KET``/``BRA`` and their kind; open indices
        :func:`readout_inds` (see the module docstring for every name).

    Raises
    ------
    BackendError
        For a step out of range, an unknown ``arrays``/``dtype``/``neuron_form``, or params
        and words the program does not accept.

    Examples
    --------
    >>> from compiler.unroll import compile_program
    >>> from qrnn_tn.backends import readout_inds, to_quimb
    >>> spec = {"cell": {"io": 1, "workspace": 2}, "neuron": {"degree": 2}}
    >>> program = compile_program(spec, steps=2)
    >>> tn = to_quimb(program, [0.1] * program.n_params, [1, 0, 1], step=1, arrays="numpy")
    >>> readout_inds(tn)
    ('out0',)
    >>> sorted(tn.select_tensors(["NEURON", "KET", "STEP1"], which="all")[0].tags)
    ['KET', 'LANE1', 'NEURON', 'STEP1']
    >>> p = tn.contract(output_inds=readout_inds(tn)).data  # p~(w), unnormalised
    >>> from qrnn_tn import simulate
    >>> reference = simulate(program, [0.1] * program.n_params, [1, 0, 1]).probs[0, 1]
    >>> bool(abs(p / p.sum() - reference.numpy()).max() < 1e-12)
    True

    Draw it, coloured by operation (hyper networks need their open indices named):

    >>> fig = tn.draw(color=["NEURON", "RY", "START", "CLOSE", "WORDX"],
    ...               output_inds=readout_inds(tn), return_fig=True)  # doctest: +SKIP

    Notes
    -----
    quimb contracts the leaves as they are; the backend also rescales intermediates, which
    matters only for long sequences, whose ``p̃`` can underflow: ``tn.contract(...,
    strip_exponent=True)`` keeps the mantissa and exponent apart there.
    """
    program, form = _program_and_form(program, neuron_form)
    if arrays not in ARRAYS:
        raise BackendError(f"to_quimb: arrays={arrays!r}; accepted: {', '.join(ARRAYS)}")
    real = _dtype(dtype)
    steps = program.steps
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool):
        raise BackendError(f"to_quimb: step must be an integer; got {type(step).__name__}")
    if not -steps <= step < steps:
        raise BackendError(
            f"to_quimb: step {step} is out of range for a program of {steps} steps "
            f"(0 … {steps - 1}, or negative from the end)"
        )
    step = int(step) % steps
    tokens = _tensor(words, "words", "integer tokens [L] or [batch, L]")
    single = tokens.ndim == 1
    tokens = check_words(program, tokens[None] if single else tokens, "teacher", "to_quimb")
    params = _tensor(params, "params", f"{program.n_params} floats", np.float64)
    params = check_params(program, params, "to_quimb").to(real)

    import quimb.tensor as qtn

    net, starts = _network(program, step, tokens.shape[0], form)
    values = LeafValues(program, params, tokens)
    values.prepare_neurons(tuple(leaf.position for leaf in net.leaves if leaf.kind == "neuron"))
    names = _index_names(net)
    n_ket = len(net.leaves) // 2
    tensors = []
    for i, leaf in enumerate(net.leaves):
        data = values.value(leaf)
        inds = tuple(names[j] for j in leaf.inds)
        if single and leaf.batched:
            data, inds = data[0], inds[1:]
        array = data.detach().cpu().numpy() if arrays == "numpy" else data
        half = i // n_ket if i < 2 * n_ket else None
        tensors.append(qtn.Tensor(array, inds=inds, tags=_tags(leaf, half, starts, i % n_ket)))
    return qtn.TensorNetwork(tensors)


def readout_inds(tn: qtn.TensorNetwork) -> tuple[str, ...]:
    """Return the open indices of a network from :func:`to_quimb`, in the order of ``probs``.

    ``("batch", "out0", "out1", …)`` (``batch`` only for a batch of words; ``out0`` the most
    significant bit of the word): contracting to them and reshaping to ``[batch, 2^io]``
    gives the unnormalised distribution of the step's word.
    """
    outs = sorted((int(m.group(1)), ind) for ind in tn.ind_map if (m := _OUT.fullmatch(ind)))
    head = (BATCH_IND,) if BATCH_IND in tn.ind_map else ()
    return (*head, *(ind for _, ind in outs))


def _program_and_form(program: object, neuron_form: str | None) -> tuple[Program, str]:
    if isinstance(program, Program):
        compiled, form = program, "auto"
    elif isinstance(inner := getattr(program, "program", None), Program):
        compiled, form = inner, getattr(program, "neuron_form", "auto")
    else:
        raise BackendError(
            "to_quimb: expected a compiled Program (compiler.unroll.compile_program) or a "
            f"prepared plan (qrnn_tn.backends.get_backend(name)(program, options)); got "
            f"{type(program).__name__}"
        )
    form = form if neuron_form is None else neuron_form
    if form not in NEURON_FORMS:
        raise BackendError(f"to_quimb: neuron_form={form!r}; accepted: {', '.join(NEURON_FORMS)}")
    return compiled, form


def _tensor(value: object, what: str, expected: str, dtype: type | None = None) -> torch.Tensor:
    """Return ``value`` as a tensor, or raise :class:`BackendError`.

    A given tensor is returned as it is (autograd graph included); anything else goes
    through numpy (so a list of floats stays float64).
    """
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value, dtype=dtype))
    except (TypeError, ValueError, RuntimeError) as err:
        raise BackendError(
            f"to_quimb: {what} must be {expected}; got {value!r:.60} ({err})"
        ) from None


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Return a real simulation dtype (the network is real), or raise :class:`BackendError`."""
    try:
        parsed = parse_dtype(dtype)
    except BackendError:
        parsed = None
    if parsed is None or parsed.is_complex:
        raise BackendError(
            f"to_quimb: dtype {dtype!r} is not supported; accepted: float32, float64 "
            "(the network is real)"
        )
    return parsed


def _network(program: Program, step: int, batch: int, form: str) -> tuple[StepNetwork, list[int]]:
    """Readout ``step``'s network and, per step up to it, where its ket tensors begin."""
    starts = []
    for t, net in enumerate(iter_networks(program, batch, form)):
        starts.append(len(net.leaves) // 2)
        if t == step:
            return net, [0, *starts[:-1]]
    raise AssertionError(f"program has no readout {step}")  # pragma: no cover


def _own(leaf: Leaf) -> tuple[int, ...]:
    """Return the wire indices ``leaf`` acts on (the rest are controls, sources or the batch)."""
    if leaf.kind == "neuron":
        return leaf.inds[:2]
    if leaf.kind in ("start", "close"):
        return leaf.inds[-1:]
    if leaf.kind == "ones":
        return ()
    return leaf.inds[-2:]


def _index_names(net: StepNetwork) -> dict[int, str]:
    """Readable names for the network's index ids (see the module docstring)."""
    n_ket = len(net.leaves) // 2
    ket, bra = net.leaves[:n_ket], net.leaves[n_ket : 2 * n_ket]
    names = {BATCH: BATCH_IND}
    names.update({ind: f"out{q}" for q, ind in enumerate(net.output[1:])})
    for leaf in ket:
        for ind in _own(leaf):
            names.setdefault(ind, f"q{leaf.lane}_k{ind}")
    for k, b in zip(ket, bra, strict=True):
        for ki, bi in zip(k.inds, b.inds, strict=True):
            if bi != ki:
                names[bi] = names[ki].replace("_k", "_b", 1)
    return names


def _tags(leaf: Leaf, half: int | None, starts: list[int], position: int) -> tuple[str, ...]:
    kind = leaf.name.upper() if leaf.kind == "gate" else leaf.kind.upper()
    if half is None:
        return (kind,)
    step = max(t for t, first in enumerate(starts) if first <= position)
    return (kind, f"LANE{leaf.lane}", f"STEP{step}", ("KET", "BRA")[half])
