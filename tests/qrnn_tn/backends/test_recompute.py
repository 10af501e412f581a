"""recompute(): gradients equal plain autograd's, by backward() and autograd.grad, nested."""

from __future__ import annotations

import weakref
from functools import partial

import torch

from qrnn_tn.backends.recompute import recompute

CALLS = {"n": 0}


def layer(scale: float, x: torch.Tensor, w: torch.Tensor, tokens: torch.Tensor):
    """A float output, an integer output and an output that does not depend on ``w``."""
    CALLS["n"] += 1
    y = torch.tanh(x @ w) * scale
    return y, tokens + 1, x.sum(dim=1)


def stacked(x, w1, w2, tokens, nested: bool):
    run = (lambda *a: recompute(layer, *a)) if nested else layer
    y, tokens, _ = run(0.5, x, w1, tokens)
    y, tokens, s = run(2.0, y, w2, tokens)
    return y.square().sum() + s.sum(), tokens


def test_gradients_equal_plain_autograd_and_the_graph_is_rebuilt_once():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w1, w2 = (torch.randn(4, 4, dtype=torch.float64, generator=gen) for _ in range(2))
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    tokens = torch.arange(3)
    plain, plain_tokens = stacked(x, w1, w2, tokens, nested=False)
    expect = torch.autograd.grad(plain, (x, w1, w2))
    for nested in (False, True):
        CALLS["n"] = 0
        loss, out_tokens = recompute(partial(stacked, nested=nested), x, w1, w2, tokens)
        assert torch.equal(out_tokens, plain_tokens) and not out_tokens.requires_grad
        assert CALLS["n"] == 2  # forward only, no graph kept
        torch.testing.assert_close(loss, plain, rtol=0, atol=0)
        got = torch.autograd.grad(loss, (x, w1, w2))
        for g, e in zip(got, expect, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-13, atol=1e-13)
        assert CALLS["n"] == (6 if nested else 4)  # the outer, then each inner, recomputed

    x.grad = None
    recompute(partial(stacked, nested=True), x, w1, w2, tokens)[0].backward()
    torch.testing.assert_close(x.grad, expect[0], rtol=1e-13, atol=1e-13)


def test_inputs_without_gradients_get_none_and_gradcheck_passes():
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, dtype=torch.float64)  # constant
    assert torch.autograd.gradcheck(lambda x: recompute(layer, 1.5, x, w, torch.zeros(2))[0], x)
    (y, _, _) = recompute(layer, 1.0, x, w, torch.zeros(2))
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert gx.shape == x.shape and w.grad is None


def test_saved_inputs_are_freed_once_the_backward_pass_has_used_them():
    """A long chain of checkpoints keeps its boundary states only until each is recomputed:
    a reference held past that (e.g. by the closure that reruns the function) would keep
    every boundary of the sequence alive for the whole backward pass."""
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    hidden = torch.tanh(x * 2)  # an intermediate: only the checkpoint keeps it
    alive = weakref.ref(hidden)
    y, _, _ = recompute(layer, 1.0, hidden, w, torch.zeros(2))
    del hidden
    assert alive() is not None  # saved for the backward pass
    y.sum().backward()  # the graph (y.grad_fn) is still referenced by y
    assert alive() is None
