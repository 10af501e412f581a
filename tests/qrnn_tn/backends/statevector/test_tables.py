"""Neuron tables against autograd over the same forward computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compiler.ir import Neuron
from compiler.unroll import compile_program
from qrnn_tn.backends.statevector.tables import NeuronTable


@pytest.mark.parametrize("zeta", [True, False])
def test_neuron_table_backward_equals_autograd(zeta):
    program = compile_program({"cell": {"io": 2, "workspace": 4}, "neuron": {"degree": 3}})
    neuron = next(op for op in program.ops if isinstance(op, Neuron))
    table = NeuronTable(neuron)
    table.zeta = zeta
    params = torch.randn(program.n_params, dtype=torch.float64, requires_grad=True)
    c, s = table.forward(params)
    c_bar, s_bar = torch.randn_like(c), torch.randn_like(s)
    (expect,) = torch.autograd.grad((c * c_bar).sum() + (s * s_bar).sum(), params)
    got = torch.zeros_like(params)
    table.backward(params.detach(), c_bar, s_bar, got)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12)
