"""Shared hypothesis strategies: small cells, their parameters and token sequences.

Cells stay within what the dense reference (:mod:`tests.reference`) simulates quickly:
at most 6 lanes. Every strategy draws valid input; fuzz tests of bad input build on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from compiler.unroll import Program


@st.composite
def cell_specs(draw: st.DrawFn, max_lanes: int = 6) -> dict[str, Any]:
    """A spec dict of a small cell: io, workspace, stages, degree, order and topology."""
    io = draw(st.integers(1, 2))
    workspace = draw(st.integers(1, max_lanes - io))
    topology = draw(st.sampled_from(["all", {"local": 1}, {"local": 2}]))
    sources = io + workspace - 1 if topology == "all" else 2 * topology["local"]
    degree = draw(st.integers(1, max(1, min(2, sources))))
    return {
        "cell": {"io": io, "workspace": workspace, "stages": draw(st.integers(0, 2))},
        "neuron": {"degree": degree, "order": draw(st.integers(1, 2)), "topology": topology},
    }


@st.composite
def runs(draw: st.DrawFn, program: Program, batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Parameters in canonical order (angles in ``[-π, π]``) and ``batch`` token sequences
    for ``program``."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    params = rng.uniform(-np.pi, np.pi, program.n_params)
    words = rng.integers(0, 2**program.io, size=(batch, program.n_tokens))
    return params, words
