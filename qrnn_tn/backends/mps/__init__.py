"""MPS backend: time-step a batch of sequences as matrix product states.

The state is an MPS over the lanes in lane order, torch tensors with the batch as leading
dimension, kept in mixed canonical form around a small dense block
(:mod:`~qrnn_tn.backends.mps.state`), whose moves are single autograd nodes with hand-written
backward passes (:mod:`~qrnn_tn.backends.mps.fused`). The program is lowered to typed instructions
(:mod:`~qrnn_tn.backends.mps.lowering`); neurons, RY layers, input writes, projections and
resets are applied in program order (:mod:`~qrnn_tn.backends.mps.plan`); truncated SVDs
(:mod:`~qrnn_tn.backends.mps.svd`) cap the bonds; :mod:`~qrnn_tn.backends.mps.cost`
predicts time and memory. Options: :class:`~qrnn_tn.backends.options.MPSOptions`
(``max_bond``, ``cutoff``, ``max_window``, ``threads`` and the two checkpoint levels below).

``threads``          intra-op threads of a run and of its backward pass (default: one while
                     the bond bound is at most :data:`SINGLE_THREAD_BOND`, else torch's
                     setting); the caller's setting is restored afterwards
                     (:mod:`~qrnn_tn.backends.threads`).

``checkpoint_steps`` steps per checkpoint block (:func:`~qrnn_tn.backends.recompute.recompute`;
                     default 1; 0: none). Without checkpoints the backward does not run the
                     forward again but keeps every step's graph: faster while bonds stay
                     well below the cap, slower once they saturate it (``python -m
                     benchmarks.mps --parts checkpointing`` measures both).
``checkpoint_outer`` steps per outer block of a second level (0: none). Backward then keeps
                     about ``T / outer + outer`` states instead of ``T``, and every outer
                     block but the last (the longest) runs forward once more. Default
                     ``"auto"``: one level while its predicted backward memory fits
                     ``memory_budget``; else the longest outer block that fits (the least
                     recomputation); else ``⌈√T⌉`` (the least memory).

With a bond cap, float64 is the fast dtype: its splits go through ``eigh`` of a Gram matrix
(:func:`~qrnn_tn.backends.mps.svd.split`), which float32's precision does not allow, so a
float32 run takes the full SVD and is not faster on CPU.

The run's :attr:`RunResult.discarded` holds the discarded weight per step. Truncation
error bound: if the weights ``ε_i`` are discarded at the SVDs up to a
readout, the normalised state is off by ``‖ψ̃ - ψ‖ ≤ Σ_i √(2ε_i)`` (each SVD removes an
orthogonal part of relative norm √ε_i; renormalising at most doubles it in the 2-norm sense
``‖a/‖a‖ - ψ‖² = 2 - 2√(1-ε) ≤ 2ε``; neurons and projections are then divided by their
success probabilities, which the bound assumes are not small), and any distribution read
from it moves by at most ``2‖ψ̃ - ψ‖`` in total variation. Tests check
``max_w |p̃(w) - p(w)| ≤ 2 Σ √(2 ε)`` on cells with a known answer.
"""

from __future__ import annotations

from qrnn_tn.backends.mps.cost import MPSCostDetails
from qrnn_tn.backends.mps.plan import SINGLE_THREAD_BOND, MPSPlan, default_cutoff, prepare

__all__ = ["MPSCostDetails", "MPSPlan", "SINGLE_THREAD_BOND", "default_cutoff", "prepare"]
