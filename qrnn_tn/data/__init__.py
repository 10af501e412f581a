"""Datasets of the paper's tasks as token sequences with loss masks (numpy only).

See QRNN.md §3 (steps and masks) and §7 (the tasks).
"""

from qrnn_tn.data.base import (
    DataError,
    SequenceDataset,
    decode_label,
    encode_label,
    label_tokens_needed,
)
from qrnn_tn.data.digits import digits_pixel_dataset, digits_reduced_datasets, digits_split
from qrnn_tn.data.elman import (
    DNA_BASES,
    LETTER_PAD,
    LETTERS,
    dna,
    elman_letters,
    elman_xor,
    memorise,
)
from qrnn_tn.data.mnist import MNIST_URL, load_mnist, read_idx
from qrnn_tn.data.pixels import (
    binarise,
    class_indices,
    crop_center,
    deskew,
    downscale,
    mnist_pixel_dataset,
    pixel_sequences,
    select_classes,
)
from qrnn_tn.data.reduce import ReducedEncoder, code_sequences, reduced_dataset, reduced_splits

__all__ = [
    "DNA_BASES",
    "LETTERS",
    "LETTER_PAD",
    "MNIST_URL",
    "DataError",
    "ReducedEncoder",
    "SequenceDataset",
    "binarise",
    "class_indices",
    "code_sequences",
    "crop_center",
    "deskew",
    "decode_label",
    "digits_pixel_dataset",
    "digits_reduced_datasets",
    "digits_split",
    "dna",
    "downscale",
    "elman_letters",
    "elman_xor",
    "encode_label",
    "label_tokens_needed",
    "load_mnist",
    "memorise",
    "mnist_pixel_dataset",
    "pixel_sequences",
    "read_idx",
    "reduced_dataset",
    "reduced_splits",
    "select_classes",
]
