"""The mutable state of one run: tokens, sampling, outputs and the incoming gradients."""

from __future__ import annotations

import torch

from qrnn_tn.backends.statevector.bits import Bit
from qrnn_tn.backends.statevector.blocks import BlockOperators
from qrnn_tn.backends.statevector.tables import Tables
from qrnn_tn.semantics import token_bits

__all__ = ["Run"]


class Run:
    """Mutable state of one run: tokens, sampling, outputs, and the incoming gradients.

    ``assignment`` fixes the values of some classical bits per column instead of reading them
    from the tokens (the columns of a block's construction are its bits' values).
    """

    def __init__(
        self,
        words: torch.Tensor,
        mode: str,
        generator: torch.Generator | None,
        tables: Tables,
        steps: int,
        io: int,
        assignment: dict[Bit, torch.Tensor] | None = None,
    ) -> None:
        self.words, self.mode, self.generator, self.tables = words, mode, generator, tables
        self.io, self.assignment = io, assignment or {}
        self.probs: list[torch.Tensor | None] = [None] * steps
        self.log_norms: list[torch.Tensor] = []
        self.grad_probs: torch.Tensor | None = None
        self.grad_log_norm: torch.Tensor | None = None
        self.blocks = BlockOperators()
        self._indices: dict[tuple[Bit, ...], torch.Tensor] = {}
        self._onehots: dict[tuple[tuple[Bit, ...], torch.dtype], torch.Tensor] = {}
        self._groups: dict[tuple[Bit, ...], tuple[torch.Tensor, list[int]]] = {}

    @property
    def batch(self) -> int:
        """Return the number of sequences (columns of the state)."""
        return self.words.shape[0]

    def assigned(self, assignment: dict[Bit, torch.Tensor], columns: int) -> Run:
        """Return a replay run of ``columns`` columns reading its bits from ``assignment``."""
        device = self.tables.params.device
        words = torch.zeros(columns, 0, dtype=torch.int64, device=device)
        return Run(words, "replay", None, self.tables, 0, self.io, assignment)

    def index(self, values: tuple[Bit, ...]) -> torch.Tensor:
        """Return the ``[B]`` integers ``Σ v_j 2^(k-1-j)`` of classical bits (cached)."""
        if values not in self._indices:
            out = torch.zeros(self.batch, dtype=torch.int64, device=self.words.device)
            for value in values:
                out = 2 * out + self._bit(value)
            self._indices[values] = out
        return self._indices[values]

    def _bit(self, value: Bit) -> torch.Tensor:
        if value in self.assignment:
            return self.assignment[value]
        return token_bits(self.words, value.bits, self.io, value.const)

    def groups(self, values: tuple[Bit, ...]) -> tuple[torch.Tensor, list[int]]:
        """Return the sequences sorted by :meth:`index` (a permutation) and each group's size."""
        if values not in self._groups:
            index = self.index(values)
            counts = torch.bincount(index, minlength=2 ** len(values)).tolist()
            self._groups[values] = (torch.argsort(index, stable=True), counts)
        return self._groups[values]

    def onehot(self, values: tuple[Bit, ...], dtype: torch.dtype) -> torch.Tensor:
        """Return ``[2^k, B]``: column ``b`` the basis vector of :meth:`index` ``[b]`` (cached)."""
        key = (values, dtype)
        if key not in self._onehots:
            index = self.index(values)
            out = torch.zeros(2 ** len(values), self.batch, dtype=dtype, device=index.device)
            self._onehots[key] = out.scatter_(0, index[None, :], 1.0)
        return self._onehots[key]

    def incoming(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the gradients of the probabilities and of ``log_norm`` (backward only)."""
        if self.grad_probs is None or self.grad_log_norm is None:
            raise RuntimeError("the run's backward pass has not started")
        return self.grad_probs, self.grad_log_norm

    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the per-step distributions ``[B, steps, 2^io]`` and ``log_norm`` ``[B]``."""
        probs = torch.stack(self.probs, 1)  # type: ignore[arg-type]
        if self.log_norms:
            log_norm = torch.stack(self.log_norms).sum(0)
        else:
            log_norm = probs.new_zeros(probs.shape[0])
        return probs, log_norm
