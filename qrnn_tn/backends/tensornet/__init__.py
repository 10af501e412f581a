"""The tensor-network backend: exact readouts by contracting ket and bra networks.

Each readout step is one network ``⟨ψ̃_t| Π_w |ψ̃_t⟩`` over all words at once
(:mod:`~qrnn_tn.backends.tensornet.network`, its values from
:mod:`~qrnn_tn.backends.tensornet.values`). The plan (:mod:`~qrnn_tn.backends.tensornet.plan`)
finds a contraction tree for each step (:mod:`~qrnn_tn.backends.tensornet.search`), keeps it
in its path cache (:mod:`~qrnn_tn.backends.tensornet.cache`), slices it until the predicted
memory of a differentiated run (:mod:`~qrnn_tn.backends.tensornet.memory`) fits the budget,
and reports the cost (:mod:`~qrnn_tn.backends.tensornet.cost`) before any tensor work. A run
contracts each step once for the whole batch, rescaling intermediates and checkpointing
segments (:mod:`~qrnn_tn.backends.tensornet.contract`), in this process or slice by slice on
an executor (:mod:`~qrnn_tn.backends.tensornet.executor`).
:mod:`~qrnn_tn.backends.tensornet.quimb` hands a step's network to quimb.

Options: :class:`~qrnn_tn.backends.options.TensorNetOptions` (the path cache's directory,
search time, neuron form, slicing limit, checkpointing, and where the search runs its trials).
"""

from __future__ import annotations

from qrnn_tn.backends.base import register_backend
from qrnn_tn.backends.options import TensorNetOptions
from qrnn_tn.backends.tensornet.cache import PathCache, PathCacheWarning
from qrnn_tn.backends.tensornet.cost import TensorNetCostDetails, estimate
from qrnn_tn.backends.tensornet.plan import TensorNetPlan, prepare

__all__ = [
    "PathCache",
    "PathCacheWarning",
    "TensorNetCostDetails",
    "TensorNetPlan",
    "estimate",
    "prepare",
]

register_backend("tensornet", prepare, estimate, options=TensorNetOptions)
