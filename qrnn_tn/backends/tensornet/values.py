"""Values of the network's leaves as torch tensors, from parameters and words.

Neurons are filled in groups of equal shape (one vectorised evaluation of η, c and s per
group, through :func:`qrnn_tn.semantics.neuron_amplitudes`); word-dependent leaves are
batched one-hot vectors and ``X``-or-identity matrices. Everything a ket and its bra share is
computed once and reused across readout steps.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from compiler.ir import Neuron, WordBit
from compiler.unroll import Program
from qrnn_tn.backends.tensornet.network import Leaf
from qrnn_tn.semantics import angle_value, neuron_amplitudes, token_bits

__all__ = ["LeafValues"]


def _ry(angle: torch.Tensor) -> torch.Tensor:
    """``RY`` as ``[in, out]`` (the transpose of the matrix), batched over ``angle``."""
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)


class LeafValues:
    """Computes leaf tensors for one run; leaves with equal content share one tensor."""

    def __init__(self, program: Program, params: torch.Tensor, words: torch.Tensor):
        self.program = program
        self.params = params
        self.words = words
        self.dtype = params.dtype
        self._cache: dict[tuple, torch.Tensor] = {}
        self._neurons: dict[int, torch.Tensor] = {}

    def prepare_neurons(self, positions: tuple[int, ...]) -> None:
        """Evaluate every neuron in ``positions`` (grouped by shape, vectorised)."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for pos in positions:
            if pos in self._neurons:
                continue
            op = self._neuron(pos)
            where = {q: i for i, q in enumerate(op.sources)}
            pattern = tuple(tuple(where[q] for q in s) for s in op.subsets)
            groups[(len(op.sources), pattern, op.order, op.offset)].append(pos)
        for (m, _pattern, order, offset), members in groups.items():
            slots = torch.tensor([self._neuron(p).slots for p in members])
            monomials = self._neuron(members[0]).monomials()  # one pattern per group
            c, s = neuron_amplitudes(self.params, slots, monomials, offset, order)
            # T[n, in, out, x] = M(x)[out, in] with M = [[c, -s], [s, c]]
            t = torch.stack([torch.stack([c, s], 1), torch.stack([-s, c], 1)], 1)
            t = t.reshape(len(members), *([2] * (m + 2)))
            for k, pos in enumerate(members):
                self._neurons[pos] = t[k]

    def _neuron(self, position: int) -> Neuron:
        op = self.program.ops[position]
        if not isinstance(op, Neuron):
            raise TypeError(f"operation {position} is a {op.kind}, not a neuron")
        return op

    def word_bits(self, const: int, bits: tuple[WordBit, ...]) -> torch.Tensor:
        """``const`` XOR the given word bits, per sequence: ``[batch]`` of 0/1."""
        return token_bits(self.words, bits, self.program.io, const)

    def value(self, leaf: Leaf) -> torch.Tensor:
        """Return the tensor of ``leaf``, in the order of its indices."""
        if leaf.kind == "neuron":
            return self._neurons[leaf.position]
        key = (leaf.kind, leaf.ref, leaf.name, len(leaf.inds))
        if key not in self._cache:
            self._cache[key] = self._make(leaf)
        return self._cache[key]

    def _make(self, leaf: Leaf) -> torch.Tensor:
        kind = leaf.kind
        if kind in ("start", "close"):
            const, bits = leaf.word
            if not leaf.batched:
                out = torch.zeros(2, dtype=self.dtype)
                out[const] = 1
                return out
            return torch.nn.functional.one_hot(self.word_bits(const, bits), 2).to(self.dtype)
        if kind == "ones":
            return torch.ones(self.words.shape[0], dtype=self.dtype)
        if kind == "wordx":
            bit = self.word_bits(*leaf.word)
            eye = torch.eye(2, dtype=self.dtype)
            return torch.where(bit[:, None, None] == 1, eye.flip(0), eye)
        if leaf.name == "x":
            return torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=self.dtype)
        angle = angle_value(self.params, leaf.angle)
        rot = _ry(angle)
        controls = len(leaf.inds) - 2
        if controls == 0:
            return rot
        eye = torch.eye(2, dtype=self.dtype)
        blocks = torch.stack([eye] * (2**controls - 1) + [rot])
        return blocks.reshape(*([2] * (controls + 2)))
