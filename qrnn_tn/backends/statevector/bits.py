"""Classical bits: qubits known to be in a basis state, kept out of the state.

A classical qubit's value is a constant XOR some token bits, evaluated per sequence; a
tuple of them indexes a table (first most significant, as qubit 0 is everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir import WordBit

__all__ = ["Bit", "static_index"]


@dataclass(frozen=True)
class Bit:
    """The value of a classical qubit: ``const`` XOR the listed token bits."""

    const: int = 0
    bits: tuple[WordBit, ...] = ()

    def flip(self, bit: WordBit | None = None) -> Bit:
        """Return this value XOR 1 (``bit`` is ``None``) or XOR a token bit."""
        if bit is None:
            return Bit(1 - self.const, self.bits)
        bits = set(self.bits) ^ {bit}
        return Bit(self.const, tuple(sorted(bits, key=lambda b: (b.token, b.bit))))

    @property
    def static(self) -> bool:
        """Whether the value is the same for every sequence (no token bits)."""
        return not self.bits


def static_index(values: tuple[Bit, ...]) -> int:
    """Return the integer ``Σ v_j 2^(k-1-j)`` of constant bits (first most significant)."""
    out = 0
    for value in values:
        out = 2 * out + value.const
    return out
