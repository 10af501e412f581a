"""Batch metrics: sums that add across batches and ranks, against direct computations."""

from __future__ import annotations

import math

import torch

from qrnn_tn.training.metrics import StepSums


def _batch(seed: int, batch: int = 3, steps: int = 4, words: int = 4):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(batch, steps, words, generator=gen, dtype=torch.float64)
    probs = probs / probs.sum(-1, keepdim=True)
    scored = torch.randint(0, words, (batch, steps), generator=gen)
    target_prob = probs.gather(-1, scored[..., None])[..., 0]
    losses = -target_prob.log()
    mask = torch.rand(batch, steps, generator=gen) < 0.7
    mask[0, 0] = True
    return losses, probs, target_prob, scored, mask


def test_sums_match_a_direct_count():
    losses, probs, target_prob, scored, mask = _batch(0)
    sums = StepSums.of(losses, probs, target_prob, scored, mask)
    rows = [(b, t) for b in range(3) for t in range(4) if mask[b, t]]
    assert sums.scored == len(rows)
    assert math.isclose(sums.loss, sum(float(losses[b, t]) for b, t in rows))
    right = sum(int(probs[b, t].argmax() == scored[b, t]) for b, t in rows)
    assert sums.correct == right
    assert math.isclose(sums.overhead, float((1 / target_prob).sum())) and sums.steps == 12
    summary = sums.summary()
    assert math.isclose(summary["accuracy"], right / len(rows)) and "discarded" not in summary


def test_two_batches_add_to_their_concatenation():
    first, second = _batch(1), _batch(2)
    whole = [torch.cat(pair) for pair in zip(first, second, strict=True)]
    discarded = torch.tensor([[0.0, 1e-3, 0, 0], [2e-3, 0, 0, 0], [0.0] * 4], dtype=torch.float64)
    added = StepSums.of(*first, discarded) + StepSums.of(*second)
    direct = StepSums.of(*whole, torch.cat([discarded, torch.zeros(3, 4)]))
    for key in ("loss", "overhead"):
        assert math.isclose(getattr(added, key), getattr(direct, key), rel_tol=1e-12)
    assert (added.scored, added.correct, added.steps) == (direct.scored, direct.correct, 24)
    assert added.discarded == direct.discarded == 2e-3  # the worst sequence, not a sum


def test_a_reduction_across_ranks_equals_adding():
    """What an all-reduce does (sum, then max) to the tensors of two ranks."""
    one, two = StepSums.of(*_batch(3), torch.full((3, 4), 1e-4)), StepSums.of(*_batch(4))
    vectors = [one.to_tensor(), two.to_tensor()]
    reduced = StepSums.from_tensors(vectors[0] + vectors[1], torch.maximum(*vectors))
    assert reduced == one + two
    exact = StepSums.from_tensors(two.to_tensor() * 2, two.to_tensor())
    assert exact.discarded is None
