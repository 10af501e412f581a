"""qrnn-tn: quantum recurrent neural networks, compiled and simulated differentiably.

A QRNN cell (Bausch, *Recurrent Quantum Neural Networks*, NeurIPS 2020) is written as a
spec, compiled to a program of gates over time, and run by a backend: an exact
statevector, an exact tensor network (cotengra paths) or a bounded-bond MPS. Every run is
a torch computation, so the cell trains with autograd.

The names most code needs:

- :func:`load_spec` reads and validates a cell spec (TOML, JSON, dict);
- :func:`compile_program` unrolls it over a number of steps into a ``Program``;
- :func:`choose` picks the cheapest backend that fits the memory budget and prepares a plan;
- :func:`simulate` runs a cell on token sequences in one call;
- :class:`QRNN` is the cell as a ``torch.nn.Module`` (``model(words)`` gives per-step
  distributions; ``model.plan(steps, batch)`` the backend plan and its cost);
- :class:`Error` is the base of every error the project raises on purpose.

Examples
--------
>>> import qrnn_tn
>>> program = qrnn_tn.compile_program("examples/elman_xor.toml", steps=2)
>>> result = qrnn_tn.simulate(program, None, [[0, 1, 1]], seed=0)
>>> tuple(result.probs.shape)  # [batch, steps, 2^io]
(1, 2, 2)

Training, data sets and the command line live in :mod:`qrnn_tn.training`,
:mod:`qrnn_tn.tasks`, :mod:`qrnn_tn.data` and ``python -m qrnn_tn`` (``qrnn-tn``).
"""

from typing import TYPE_CHECKING

from compiler.spec import SpecError, load_spec
from compiler.unroll import compile_program
from qrnn_tn.errors import BackendError, Error
from qrnn_tn.lazy import lazy_attributes

if TYPE_CHECKING:
    from qrnn_tn.backends import BackendOptions, choose
    from qrnn_tn.model import QRNN
    from qrnn_tn.simulation import simulate

#: Names imported on first use (they import torch), so that ``import qrnn_tn.cli`` and the
#: command line's error messages start without it.
_LAZY = {
    "BackendOptions": "qrnn_tn.backends",
    "choose": "qrnn_tn.backends",
    "QRNN": "qrnn_tn.model",
    "simulate": "qrnn_tn.simulation",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendOptions",
    "Error",
    "QRNN",
    "SpecError",
    "__version__",
    "choose",
    "compile_program",
    "load_spec",
    "simulate",
]
