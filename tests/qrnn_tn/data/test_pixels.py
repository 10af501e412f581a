import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrnn_tn.data import (
    DataError,
    binarise,
    crop_center,
    deskew,
    downscale,
    mnist_pixel_dataset,
    pixel_sequences,
    select_classes,
)


def test_crop_center_hand():
    img = np.arange(16).reshape(1, 4, 4)
    assert crop_center(img, 2)[0].tolist() == [[5, 6], [9, 10]]
    odd = np.arange(25).reshape(1, 5, 5)
    assert crop_center(odd, 2)[0].tolist() == [[6, 7], [11, 12]]
    assert crop_center(np.zeros((3, 28, 28)), 20).shape == (3, 20, 20)
    with pytest.raises(DataError, match="size"):
        crop_center(img, 5)


def test_downscale_divisible_is_block_average():
    img = np.random.default_rng(1).integers(0, 256, size=(2, 6, 6)).astype(np.uint8)
    out = downscale(img, 3)
    for n in range(2):
        for i in range(3):
            for j in range(3):
                block = img[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].astype(float)
                assert out[n, i, j] == pytest.approx(block.mean())


def test_downscale_non_divisible_hand():
    # 3x3 -> 2x2: output pixel (0, 0) covers [0, 1.5) x [0, 1.5)
    img = np.arange(9, dtype=float).reshape(1, 3, 3)
    wanted = (0 * 1 + 1 * 0.5 + 3 * 0.5 + 4 * 0.25) / 2.25
    assert downscale(img, 2)[0, 0, 0] == pytest.approx(wanted)
    # 3x3 -> 2x2, last pixel (1, 1) covers [1.5, 3)^2
    wanted = (4 * 0.25 + 5 * 0.5 + 7 * 0.5 + 8 * 1) / 2.25
    assert downscale(img, 2)[0, 1, 1] == pytest.approx(wanted)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31))
def test_downscale_preserves_mean_and_constants(rows, cols, size, seed):
    img = np.random.default_rng(seed).random((1, rows, cols))
    out = downscale(img, size)
    assert out.shape == (1, size, size)
    assert out.mean() == pytest.approx(img.mean())
    assert img.min() - 1e-12 <= out.min() and out.max() <= img.max() + 1e-12
    assert np.allclose(downscale(np.full((1, rows, cols), 7.0), size), 7.0)


def test_binarise_is_strictly_above_threshold():
    assert binarise(np.array([[[7, 8, 9]]]), 8).tolist() == [[[False, False, True]]]


def test_two_scanlines_of_a_hand_made_image():
    img = np.array([[[1, 0, 0], [1, 1, 0], [0, 0, 1]]], dtype=bool)
    ds = pixel_sequences(img, np.array([6]), classes=(3, 6))
    row_major = [1, 0, 0, 1, 1, 0, 0, 0, 1]
    col_major = [1, 1, 0, 0, 1, 0, 0, 0, 1]
    assert ds.io == 2 and ds.n_label_steps == 1
    assert ds.words[0, :9].tolist() == [
        2 * r + c for r, c in zip(row_major, col_major, strict=True)
    ]
    assert ds.words[0, 9] == 1  # class index of 6 in (3, 6)
    assert ds.mask[0].tolist() == [False] * 8 + [True]
    assert ds.labels.tolist() == [1]
    # io=1 keeps only the row-major scanline
    single = pixel_sequences(img, np.array([3]), classes=(3, 6), io=1)
    assert single.words[0].tolist() == row_major + [0]


def test_ten_classes_need_two_label_tokens():
    imgs = np.zeros((2, 2, 2), dtype=np.uint8)
    ds = pixel_sequences(imgs, np.array([7, 0]), classes=range(10))
    assert ds.n_label_steps == 2 and ds.words.shape == (2, 6)
    assert ds.words[:, 4:].tolist() == [[1, 3], [0, 0]]  # 7 = 01 11, 0 = 00 00
    assert ds.mask.tolist() == [[False, False, False, True, True]] * 2


def test_pixel_sequence_errors():
    img = np.zeros((1, 2, 2), dtype=np.uint8)
    with pytest.raises(DataError, match="select_classes"):
        pixel_sequences(img, np.array([5]), classes=(0, 1))
    with pytest.raises(DataError, match="binary"):
        pixel_sequences(img + 2, np.array([0]), classes=(0, 1))
    with pytest.raises(DataError, match="repeats"):
        pixel_sequences(img, np.array([0]), classes=(0, 0))


def test_select_classes():
    imgs = np.arange(5)[:, None, None] * np.ones((5, 2, 2))
    kept, labels = select_classes(imgs, np.array([3, 1, 6, 3, 0]), (3, 6))
    assert labels.tolist() == [3, 6, 3]
    assert kept[:, 0, 0].tolist() == [0, 2, 3]
    with pytest.raises(DataError, match="no sample"):
        select_classes(imgs, np.array([1, 1, 1, 1, 1]), (3,))


def _idx(array):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_mnist_pixel_dataset_end_to_end(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[0, 4:24, 4:24] = 255  # the whole crop window is white
    images[1, 4:6, 4:6] = 255  # only the top-left 2x2 block of the crop
    images[2, :4, :] = 255  # outside the crop window only
    labels = np.array([1, 0, 2, 1], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    ds = mnist_pixel_dataset(tmp_path, digits=(0, 1), split="train")
    assert ds.words.shape == (3, 101) and ds.io == 2
    assert ds.labels.tolist() == [1, 0, 1]  # the digit-2 image is dropped
    assert ds.words[0, :100].tolist() == [3] * 100
    assert ds.words[1, :100].tolist() == [3] + [0] * 99  # pixel (0,0) is first in both scans
    assert ds.words[2, :100].tolist() == [0] * 100
    assert ds.words[:, 100].tolist() == [1, 0, 1]
    assert ds.mask.sum(axis=1).tolist() == [1, 1, 1] and ds.mask[:, -1].all()


def test_mnist_pixel_dataset_deskews_before_cropping(tmp_path):
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[0, 0:4, 0:4] = 255  # a corner block, outside the crop window: moved to the centre
    images[1, 6:22, 6:8] = 255  # a stroke leaning right by 1 column per 2 rows
    for r in range(6, 22):
        images[1, r] = 0
        images[1, r, 6 + (r - 6) // 2 : 8 + (r - 6) // 2] = 255
    labels = np.array([0, 1], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    plain = mnist_pixel_dataset(tmp_path, digits=(0, 1), split="train")
    upright = mnist_pixel_dataset(tmp_path, digits=(0, 1), split="train", deskew_images=True)
    assert plain.words[0, :100].tolist() == [0] * 100
    centre = np.zeros(100, dtype=np.int64)
    centre[[44, 45, 54, 55]] = 3  # the crop's 10x10 pixels (4, 4), (4, 5), (5, 4), (5, 5)
    assert upright.words[0, :100].tolist() == centre.tolist()

    def columns(words):  # columns holding ink in the row-major scanline
        return set(np.flatnonzero((words[:100] >> 1).reshape(10, 10).any(axis=0)).tolist())

    assert len(columns(upright.words[1])) <= 2 < len(columns(plain.words[1]))


def test_select_classes_refuses_absent_classes_and_a_single_class():
    imgs = np.zeros((4, 2, 2))
    with pytest.raises(DataError, match=r"no sample has label\(s\) \[11\]"):
        select_classes(imgs, np.array([0, 1, 0, 1]), (0, 11))
    with pytest.raises(DataError, match="single class"):
        select_classes(imgs, np.array([0, 1, 0, 1]), (1,))
    with pytest.raises(DataError, match=r"no sample has label\(s\) \[1\]"):  # a one-class file
        select_classes(imgs, np.array([0, 0, 0, 0]), (0, 1))


def _moments(image):
    """Centre of mass and row-column covariance over row variance of one grey image."""
    r, c = np.mgrid[: image.shape[0], : image.shape[1]]
    mass = image.sum()
    mr, mc = (r * image).sum() / mass, (c * image).sum() / mass
    var_r = ((r - mr) ** 2 * image).sum() / mass
    return mr, mc, ((r - mr) * (c - mc) * image).sum() / mass / var_r


@pytest.mark.parametrize("slant", [-0.5, -0.2, 0.3, 0.6])
def test_deskew_makes_a_slanted_stroke_upright_and_centred(slant):
    image = np.zeros((1, 28, 28))
    for row in range(5, 23):  # a two-pixel-wide stroke, column 10 + slant * (row - 5)
        col = 10 + slant * (row - 5) + 2
        image[0, row, int(np.floor(col)) : int(np.floor(col)) + 2] = 255.0
    assert abs(_moments(image[0])[2] - slant) < 0.1
    out = deskew(image)
    mr, mc, shear = _moments(out[0])
    assert abs(shear) < 0.05
    assert abs(mr - 13.5) < 0.5 and abs(mc - 13.5) < 0.5
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 255.0


def test_deskew_leaves_an_upright_centred_image_and_blanks_alone():
    image = np.zeros((2, 27, 27))
    image[0, 4:23, 12:15] = 7.0  # centre of mass (13, 13), the image centre; no slant
    out = deskew(image)
    np.testing.assert_allclose(out, image, atol=1e-12)


def test_deskew_only_centres_ink_in_one_row():
    image = np.zeros((1, 9, 9))
    image[0, 2, 1:4] = 1.0  # centre of mass (2, 2): moved to (4, 4), not sheared
    expected = np.zeros((1, 9, 9))
    expected[0, 4, 3:6] = 1.0
    np.testing.assert_allclose(deskew(image), expected, atol=1e-12)


def test_deskew_refuses_a_single_image():
    with pytest.raises(DataError, match="shape"):
        deskew(np.zeros((28, 28)))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 12),
    st.integers(2, 12),
    st.integers(0, 2**32 - 1),
)
def test_deskew_keeps_shape_and_grey_range(rows, cols, seed):
    image = np.random.default_rng(seed).random((2, rows, cols)) * 255.0
    image[1] = 0.0
    out = deskew(image)
    assert out.shape == image.shape and np.isfinite(out).all()
    assert out.min() >= -1e-9 and out.max() <= image.max() + 1e-9
    assert not out[1].any()
