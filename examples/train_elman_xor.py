"""Train the Elman XOR cell with the Python API, then inspect and plot it.

Run from the repository root: ``.venv/bin/python examples/train_elman_xor.py``.
"""

import torch

from qrnn_tn.model import QRNN
from qrnn_tn.plots import plot_run
from qrnn_tn.tasks import build_datasets, default_config, task_options
from qrnn_tn.training import RunDir, evaluate, train

# Data: random bit triples a b (a xor b); only the steps predicting a xor bit are scored.
options = task_options("elman-xor", {"n_triples": 4})
data = build_datasets("elman-xor", seed=0, **options)

# The cell of examples/elman_xor.toml: 1 i/o lane, 3 workspace lanes, 52 angles.
model = QRNN("examples/elman_xor.toml", seed=0)
print(f"{model.n_params} parameters; first slots: {list(model.slot_values())[:3]}")

# Adam with the task's defaults, stopping at 99% validation accuracy on the xor bits.
# Checkpoints go to runs/example-xor; running the script again resumes that run (which
# just reloads the best parameters once the run has finished). Resuming needs a checkpoint:
# without one (a first run, or one killed before its first checkpoint) the run starts afresh.
config = default_config("elman-xor", out="runs/example-xor", target_accuracy=0.99)
config.task_options = options
resume = RunDir(config.out).file(RunDir.LAST).exists()
summary = train(model, data.train, data.val, config, data.test, resume=resume, overwrite=not resume)
assert summary.test is not None  # a test set was given
print(f"stopped after {summary.steps} steps; test accuracy {summary.test.accuracy:.3f}")

# The exact per-step distributions of one sequence, and the metrics of a whole set.
words = torch.from_numpy(data.test.words[:1])
print("p_t(1) on test sequence 0:", model(words)[0, :, 1].detach().numpy().round(2))
print("validation:", evaluate(model, data.val))

# Free-running generation from a one-token prompt, and the figures of the run.
print("sampled:", model.generate([1], 11, generator=torch.Generator().manual_seed(0)).tolist())
for name, path in plot_run("runs/example-xor").items():
    print(f"{name}: {path}")
