import gzip
import struct

import numpy as np
import pytest

from qrnn_tn.data import DataError, load_mnist, read_idx


def idx_bytes(array, code=0x08, fmt="B"):
    """Independent IDX writer: magic, big-endian uint32 sizes, big-endian data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = struct.pack(f">{array.size}{fmt}", *array.ravel().tolist())
    return header + body


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 4, 5)).astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_read_images_and_labels(tmp_path, images, gz):
    out = read_idx(write(tmp_path / "img", idx_bytes(images), gz))
    assert out.dtype == np.uint8 and out.shape == (3, 4, 5)
    assert np.array_equal(out, images)
    labels = read_idx(write(tmp_path / "lab", idx_bytes(np.array([7, 0, 9])), gz))
    assert labels.shape == (3,) and labels.tolist() == [7, 0, 9]


def test_read_big_endian_int16(tmp_path):
    values = np.array([[-2, 300], [1, -32768]])
    out = read_idx(write(tmp_path / "x", idx_bytes(values, code=0x0B, fmt="h")))
    assert out.tolist() == values.tolist()
    assert out.dtype.isnative


def test_header_magic_is_big_endian(tmp_path, images):
    data = idx_bytes(images)
    assert data[:4] == b"\x00\x00\x08\x03"
    assert int.from_bytes(data[:4], "big") == 0x00000803


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic number 0x01020801"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "magic number 0x00000701"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00", "too short"),
        (b"", "too short"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "inside its header"),
    ],
)
def test_bad_headers(tmp_path, data, match):
    path = write(tmp_path / "bad-idx", data)
    with pytest.raises(DataError, match=match) as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_and_trailing(tmp_path, images, gz):
    data = idx_bytes(images)
    with pytest.raises(DataError, match="truncated") as err:
        read_idx(write(tmp_path / "short", data[:-1], gz))
    assert "(3, 4, 5)" in str(err.value) and "short" in str(err.value)
    with pytest.raises(DataError, match="trailing"):
        read_idx(write(tmp_path / "long", data + b"\x00\x00", gz))


def test_corrupt_gzip(tmp_path, images):
    packed = gzip.compress(idx_bytes(images))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="gzip") as err:
        read_idx(path)
    assert "cut.gz" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read") as err:
        read_idx(tmp_path / "nope")
    assert "nope" in str(err.value)


def test_load_mnist_mixed_spellings(tmp_path, images):
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images), gz=True)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 3])))
    write(tmp_path / "t10k-images.idx3-ubyte", idx_bytes(images[:2]))
    write(tmp_path / "t10k-labels.idx1-ubyte.gz", idx_bytes(np.array([4, 5])), gz=True)
    x, y = load_mnist(tmp_path, "train")
    assert np.array_equal(x, images) and y.tolist() == [1, 2, 3] and y.dtype == np.int64
    x, y = load_mnist(str(tmp_path), "test")
    assert np.array_equal(x, images[:2]) and y.tolist() == [4, 5]


def test_load_mnist_missing_files_message(tmp_path, images):
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, "test")
    msg = str(err.value)
    for name in (
        "t10k-images-idx3-ubyte",
        "t10k-images-idx3-ubyte.gz",
        "t10k-images.idx3-ubyte",
        "t10k-images.idx3-ubyte.gz",
    ):
        assert name in msg
    assert str(tmp_path) in msg
    assert "yann.lecun.com/exdb/mnist" in msg and "never downloads" in msg
    # images present, labels missing: the message names the labels file
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(images))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path, "test")


def test_load_mnist_directory_and_split_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(DataError, match="split"):
        load_mnist(tmp_path, "valid")


def test_load_mnist_inconsistent_files(tmp_path, images):
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images))
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.array([1, 2])))
    with pytest.raises(DataError, match="3 images but .* 2 labels"):
        load_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(images))
    with pytest.raises(DataError, match="labels are uint8"):
        load_mnist(tmp_path)


def test_a_size_product_beyond_int64_is_a_clean_error(tmp_path):
    # four sizes of 2**16: 2**64 elements, which wraps to 0 in int64 arithmetic
    path = write(tmp_path / "huge-idx", b"\x00\x00\x08\x04" + struct.pack(">4I", *[2**16] * 4))
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
