"""Reading MNIST from local IDX files (plain or gzip). Nothing is ever downloaded."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from qrnn_tn.data.base import DataError

__all__ = ["MNIST_URL", "load_mnist", "read_idx"]

#: Where the official files are published (and a mirror, since the original is often down).
MNIST_URL = (
    "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
)

# IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_STEMS = {
    "train": ("train-images", "train-labels"),
    "test": ("t10k-images", "t10k-labels"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (optionally gzip-compressed, detected by content).

    The header is a big-endian magic ``0x0000TTDD`` (``TT`` the type code, e.g. 0x08 for
    uint8; ``DD`` the number of dimensions), then ``DD`` big-endian uint32 sizes, then the
    data. MNIST images are ``0x00000803`` (uint8 ``[N, rows, cols]``), labels
    ``0x00000801`` (uint8 ``[N]``). Returns the array in native byte order.

    Raises
    ------
    DataError
        If the file is unreadable, not IDX, truncated or has trailing bytes.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"IDX file {path} looks gzip-compressed but does not decompress ({exc}); "
                "the download is probably incomplete: fetch the file again"
            ) from exc
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is {len(raw)} bytes long, too short for the header")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero != b"\x00\x00" or code not in _IDX_DTYPES:
        raise DataError(
            f"IDX file {path} has magic number 0x{magic:08X}, which is not IDX (expected "
            "0x0000TTDD with type code TT in 08,09,0B,0C,0D,0E, e.g. 0x00000803 for MNIST "
            "images, 0x00000801 for labels)"
        )
    if ndim == 0:
        raise DataError(f"IDX file {path} declares 0 dimensions (magic 0x{magic:08X})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"IDX file {path} is truncated inside its header: {ndim} dimension sizes need "
            f"{header} bytes, the file has {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = header + dtype.itemsize * math.prod(shape)  # Python ints: no overflow
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "followed by trailing bytes"
        raise DataError(
            f"IDX file {path} is {what}: its header declares shape {shape} of {dtype.name}, "
            f"i.e. {expected} bytes in all, but the file holds {len(raw)} (after "
            "decompression); fetch the file again"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str, kind: str) -> Path:
    """Locate ``<stem>-idxK-ubyte`` in ``directory`` under its usual spellings."""
    ndim = 3 if stem.endswith("images") else 1
    official = f"{stem}-idx{ndim}-ubyte"
    candidates = [n + ext for n in (official, f"{stem}.idx{ndim}-ubyte") for ext in ("", ".gz")]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"MNIST {kind} not found in directory {directory}: looked for "
        f"{', '.join(candidates)}. Download the official MNIST file "
        f"{official}.gz from {MNIST_URL} and put it (gzipped or "
        "not) in that directory; qrnn-tn never downloads data itself."
    )


def load_mnist(
    data_dir: str | Path, split: Literal["train", "test"] = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split from ``data_dir``.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (``t10k-…`` for
    ``split="test"``), optionally ``.gz``, also under the ``train-images.idx3-ubyte``
    spelling.

    Returns
    -------
    images : np.ndarray
        uint8 ``[N, 28, 28]`` (whatever rows/cols the file declares).
    labels : np.ndarray
        int64 ``[N]`` digits.
    """
    if split not in _STEMS:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(data_dir)
    if not directory.is_dir():
        raise DataError(
            f"MNIST directory {directory} does not exist; create it and put the official "
            f"MNIST files from {MNIST_URL} in it (nothing is downloaded automatically)"
        )
    image_stem, label_stem = _STEMS[split]
    image_path = _find(directory, image_stem, f"{split} images")
    label_path = _find(directory, label_stem, f"{split} labels")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{image_path} holds a {images.dtype} array of shape {images.shape}; MNIST images "
            "are uint8 [N, rows, cols] (magic 0x00000803): is this the labels file?"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{label_path} holds a {labels.dtype} array of shape {labels.shape}; MNIST labels "
            "are uint8 [N] (magic 0x00000801): is this the images file?"
        )
    if len(images) != len(labels):
        raise DataError(
            f"MNIST {split} files disagree: {image_path} has {len(images)} images but "
            f"{label_path} has {len(labels)} labels; use files from the same release"
        )
    return images, labels.astype(np.int64)
