"""An independent −log_norm per sequence: the run replayed with dense numpy matrices.

One neuron at a time (QRNN.md §2-3), summing −log of each success probability and each
projection but the last; for the cell io 1, workspace 2, stages 1, degree 2, order 2,
topology all (qubit 0 the input lane, the most significant bit of a basis index).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from qrnn_tn.model import QRNN

N = 3  # lanes


def _bits(x: int) -> list[int]:
    return [(x >> (N - 1 - q)) & 1 for q in range(N)]


def _apply_neuron(psi, g, subsets, angles, order, beta):
    """Apply the neuron on lane ``g``; return the renormalised state and −log success."""
    out = np.zeros_like(psi)
    for x in range(2**N):
        bits = _bits(x)
        if bits[g]:
            continue
        active = (a for s, a in zip(subsets, angles, strict=True) if all(bits[i] for i in s))
        eta = (beta + sum(active)) / 2
        c, s_ = np.cos(eta) ** (2**order), np.sin(eta) ** (2**order)
        y = x | (1 << (N - 1 - g))
        a0, a1 = psi[:, x], psi[:, y]
        out[:, x], out[:, y] = c * a0 - s_ * a1, s_ * a0 + c * a1
    norm2 = (out**2).sum(1)
    return out / np.sqrt(norm2)[:, None], -np.log(norm2)


def _ry(psi, q, a):
    out = psi.copy()
    for x in range(2**N):
        if (x >> (N - 1 - q)) & 1:
            continue
        y = x | (1 << (N - 1 - q))
        c, s_ = np.cos(a / 2), np.sin(a / 2)
        out[:, x], out[:, y] = c * psi[:, x] - s_ * psi[:, y], s_ * psi[:, x] + c * psi[:, y]
    return out


def _layout(theta, degree):
    """The operations of one step in parameter order, and the output neuron."""
    taken = [0]

    def take(k):
        out = theta[taken[0] : taken[0] + k]
        taken[0] += k
        return out

    def neuron(g):
        sources = [q for q in range(N) if q != g]
        subsets = [s for d in range(degree + 1) for s in combinations(sources, d)]
        return ("neuron", g, subsets, take(len(subsets)))

    layout = [neuron(g) for g in (1, 2)]
    layout += [("ry", g, take(1)[0]) for g in (1, 2)]
    layout += [neuron(g) for g in (1, 2)]
    return layout, neuron(0)


def neuron_success_log(model: QRNN, words: np.ndarray) -> np.ndarray:
    """Return ``−log_norm`` per sequence of ``words`` under ``model`` (see the module)."""
    spec = model.spec
    order, beta = spec.neuron.order, spec.neuron.offset
    layout, out_neuron = _layout(model.theta.detach().numpy(), spec.neuron.degree)
    batch, length = words.shape
    psi = np.zeros((batch, 2**N))
    psi[:, 0] = 1.0
    total = np.zeros(batch)
    flipped = np.arange(2**N) ^ 4
    for t in range(length - 1):
        flip = words[:, t] == 1
        psi[flip] = psi[flip][:, flipped]
        for kind, g, *params in layout:
            if kind == "ry":
                psi = _ry(psi, g, params[0])
            else:
                psi, cost = _apply_neuron(psi, g, *params, order, beta)
                total += cost
        psi[flip] = psi[flip][:, flipped]
        psi, cost = _apply_neuron(psi, out_neuron[1], *out_neuron[2:], order, beta)
        total += cost
        if t == length - 2:  # the last readout is not projected: nothing follows it
            break
        keep = ((np.arange(2**N) >> 2) & 1)[None, :] == words[:, t + 1, None]
        psi = np.where(keep, psi, 0.0)
        p = (psi**2).sum(1)
        total -= np.log(p)
        psi = psi / np.sqrt(p)[:, None]
        one = words[:, t + 1] == 1
        psi[one] = psi[one][:, flipped]
    return total
