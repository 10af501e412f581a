"""qrnn-tn: differentiable tensor-network simulation of quantum recurrent neural networks."""

from qrnn_tn.simulate import simulate

__version__ = "0.1.0"

__all__ = ["__version__", "simulate"]
