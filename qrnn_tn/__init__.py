"""qrnn-tn: differentiable tensor-network simulation of quantum recurrent neural networks."""
