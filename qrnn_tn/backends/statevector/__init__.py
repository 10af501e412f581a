"""Exact statevector backend: a batched torch simulation of a :class:`Program` (QRNN.md §2–§3).

**State.** Qubits known to be in a basis state — all of them at the start, the i/o lanes from a
projection until the output neurons rotate them, ancillas outside their neuron — are kept out of
the state as *classical* bits (:mod:`~qrnn_tn.backends.statevector.bits`): a constant XOR token
bits, evaluated per sequence. The *quantum* qubits form one tensor ``[2^q, B]`` for a batch of
``B`` sequences: ascending qubit order, the lowest qubit the most significant bit (QRNN.md §1),
the batch last and contiguous so that every kernel runs over long inner loops. A rotation of a
classical qubit makes it quantum (the state doubles); a projection makes its qubits classical
again (the state halves per qubit). In a QRNN the i/o lanes are classical for all but the output
stage, so most kernels touch ``2^(n - io)`` amplitudes instead of ``2^n``.

**Kernels** (:mod:`~qrnn_tn.backends.statevector.kernels`, from the program by
:mod:`~qrnn_tn.backends.statevector.lowering`). Neurons are applied in fused form, without
ancillas: a table of ``c(x)``, ``s(x)`` over the branches ``x`` of the sources
(:mod:`~qrnn_tn.backends.statevector.tables`, from
:func:`compiler.gates.neuron_branch_amplitudes`) rotates the target, ``φ₀ = c ψ₀ - s ψ₁``,
``φ₁ = s ψ₀ + c ψ₁``. Quantum sources index the table along state axes; classical sources select
its rows, per sequence. ``ry``/``mcry`` gates are the same kernel with a constant table; ``x``
and input writes flip a quantum qubit or a classical bit.

**Norms.** Norms only shrink (neurons, projections, postselections). The state is renormalised
at every projection and postselection, before any neuron that could take the norm² more than
``2^-80`` (float32) or ``2^-600`` (float64) below its last renormalisation (a neuron of order
``k`` shrinks it at most ``2^(2^k - 1)`` times), and once at the end; readouts divide by the norm
they read. The distributions and the accumulated ``log_norm`` equal those of renormalising after
every non-unitary operation, with a fraction of the passes over the state.

**Blocks** (:mod:`~qrnn_tn.backends.statevector.blocks`,
:mod:`~qrnn_tn.backends.statevector.fusion`). On small states, a run of rotations and flips (a
whole stage of a step) costs more in torch calls than in arithmetic. It is then fused into one
matrix per value of the classical bits it reads, built once per run by its own kernels acting on
the identity, and applied per step with one matrix product per group of sequences; the machine
model (:mod:`qrnn_tn.backends.timing`) decides.

**Gradients** (:mod:`~qrnn_tn.backends.statevector.plan`). A custom
:class:`torch.autograd.Function` keeps one state every ``segment`` state-changing kernels
(default ``⌈√kernels⌉``) and, in the backward pass, replays each segment from its checkpoint and
runs every kernel's exact adjoint (a block's gradient, summed over its uses, goes back through
its kernels once): peak memory about ``2√kernels`` states, where autograd keeps several per
kernel. The cost of a run is predicted by :mod:`~qrnn_tn.backends.statevector.cost`.

Options: :class:`~qrnn_tn.backends.options.StatevectorOptions` (``gradient``: ``"autograd"``
runs plain autograd over the same elementwise kernels, no blocks, every intermediate kept, for
checks and comparisons; ``segment``; ``cache_tables``, for wide cells; ``fuse``).
"""

from __future__ import annotations

from qrnn_tn.backends.base import register_backend
from qrnn_tn.backends.options import StatevectorOptions
from qrnn_tn.backends.statevector.cost import StatevectorCostDetails
from qrnn_tn.backends.statevector.lowering import MAX_QUBITS
from qrnn_tn.backends.statevector.plan import StatevectorPlan, prepare

__all__ = ["MAX_QUBITS", "StatevectorCostDetails", "StatevectorPlan", "prepare"]

register_backend("statevector", prepare, options=StatevectorOptions)
