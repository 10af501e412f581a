"""qrnn-tn: differentiable tensor-network simulation of quantum recurrent neural networks."""

from qrnn_tn.simulate import simulate

__all__ = ["simulate"]
