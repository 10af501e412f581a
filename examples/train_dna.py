"""Train a QRNN on the long-range memory ("DNA") task with a plain torch loop.

Each sequence is random bases with one marked base in the first half; the cell must name
the marked base at the last step. As in the paper's code, the steps have a target stream of
their own (``data.train.targets``): from the mark on, every step is teacher forced onto the
marked base. Run from the repository root: ``.venv/bin/python examples/train_dna.py``.
"""

import torch

from qrnn_tn.model import QRNN
from qrnn_tn.tasks import build_datasets, default_spec

torch.manual_seed(0)
data = build_datasets("dna", seed=0, length=100, n_train=128, n_val=64, n_test=256)
model = QRNN(default_spec("dna"), seed=0)  # 6 qubits, 96 angles
optimiser = torch.optim.Adam(model.parameters(), lr=0.05)


def tensors(dataset, rows=slice(None)):
    """Return the inputs, loss mask (the last step only) and target stream of some sequences."""
    return [torch.from_numpy(a[rows]) for a in (dataset.words, dataset.mask, dataset.targets)]


val_words, val_mask, val_targets = tensors(data.val)
for step in range(1, 501):
    words, mask, targets = tensors(data.train, torch.randint(len(data.train), (16,)).numpy())
    loss = model.loss(words, mask, targets=targets)  # NLL of the scored steps
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    optimiser.step()
    if step % 25 == 0:
        with torch.no_grad():
            val_loss = float(model.loss(val_words, val_mask, targets=val_targets))
        print(f"step {step}: train loss {loss.item():.4f}, validation loss {val_loss:.2e}")
        if val_loss < 1e-3:
            break

# Test accuracy from the exact distribution of the last step's word (the label).
words, _, targets = tensors(data.test)
with torch.no_grad():
    predicted = model.label_distribution(words, 1, targets).argmax(-1)
accuracy = float((predicted == torch.from_numpy(data.test.labels)).double().mean())
print(f"test accuracy over {len(data.test)} sequences of 100 bases: {accuracy:.1%}")
