"""images: what `predict` feeds, from `random`, an image, a .npy or an .npz, each conversion said in a note,
and every input that cannot be one refused with one line."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exporter.errors import InputSpecError
from exporter.images import MAX_IMAGE_PIXELS, check_input_path, load_samples
from exporter.interface import InputSpec

DIGIT = (InputSpec("input", (1, 28, 28)),)  # the seed network's input: grayscale 28x28


def _png(path: Path, pixels: np.ndarray) -> str:
    Image.fromarray(pixels).save(path)
    return str(path)


def _png_header(path: Path, width: int, height: int) -> str:
    """A PNG whose header claims width x height pixels, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * min(height * (width + 1), 4096)))
        + chunk(b"IEND", b"")
    )
    return str(path)


# --- random ------------------------------------------------------------------------------------------


def test_random_is_one_seeded_sample_and_says_how_it_was_drawn():
    feed, notes = load_samples("random", DIGIT, seed=3)
    x = feed["input"]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and x.min() >= 0 and x.max() < 1
    assert notes == ["a random sample, uniform in [0, 1), seed 3"]
    assert np.array_equal(load_samples("random", DIGIT, seed=3)[0]["input"], x)
    assert not np.array_equal(load_samples("random", DIGIT, seed=4)[0]["input"], x)


def test_random_draws_every_input_as_its_spec_says():
    specs = (InputSpec("ids", (1, 6), "int64", (3, 5)), InputSpec("mask", (1, 6), "bool"))
    feed, notes = load_samples("random", specs, seed=0)
    assert feed["ids"].dtype == np.int64 and set(np.unique(feed["ids"])) <= {3, 4, 5}
    assert feed["mask"].dtype == np.bool_ and feed["ids"].shape == feed["mask"].shape == (1, 6)
    assert notes == [f"a random sample, {specs[0].describe()}; {specs[1].describe()}, seed 0"]


# --- images ------------------------------------------------------------------------------------------


def test_an_rgb_photo_of_another_size_is_made_grayscale_resized_and_scaled(tmp_path):
    path = _png(tmp_path / "photo.png", np.full((64, 48, 3), 51, np.uint8))  # 48 wide, 64 high, gray
    feed, notes = load_samples(path, DIGIT)
    x = feed["input"]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert np.allclose(x, 51 / 255)  # 0..255 to [0, 1]
    assert notes == [
        "photo.png: PNG image, 48x64 RGB",
        "converted RGB to grayscale",
        "resized to 28x28",
        "values scaled from 0..255 to [0, 1], as MNIST loaders do",
    ]


def test_a_grayscale_image_of_the_right_size_is_only_scaled(tmp_path):
    pixels = np.arange(28 * 28, dtype=np.uint16).reshape(28, 28) % 256
    feed, notes = load_samples(_png(tmp_path / "digit.png", pixels.astype(np.uint8)), DIGIT)
    assert np.array_equal(feed["input"][0], pixels.astype(np.float32) / 255)  # pixel for pixel
    assert not any("converted" in n or "resized" in n for n in notes)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (1, 4, 5, 3)], ids=["channels-first", "channels-last"])
def test_a_three_channel_input_gets_the_rgb_channels_in_its_own_layout(tmp_path, shape):
    pixels = np.zeros((4, 5, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 255, 102, 0  # red, some green, no blue
    feed, notes = load_samples(_png(tmp_path / "rgb.png", pixels), (InputSpec("image", shape),))
    x = feed["image"][0]
    channels = [x[c] for c in range(3)] if shape[1] == 3 else [x[..., c] for c in range(3)]
    assert [float(c.mean()) for c in channels] == pytest.approx([1.0, 0.4, 0.0])
    assert not any("converted" in n for n in notes)


def test_a_grayscale_image_for_a_three_channel_input_is_converted_to_rgb(tmp_path):
    feed, notes = load_samples(
        _png(tmp_path / "g.png", np.full((4, 5), 255, np.uint8)), (InputSpec("i", (1, 3, 4, 5)),)
    )
    assert "converted L to RGB" in notes and np.allclose(feed["i"], 1.0)


def test_a_sample_shape_no_image_fits_is_refused():
    with pytest.raises(InputSpecError, match=r"an image fits \(H, W\), \(1, H, W\), \(3, H, W\) or \(H, W, 3\)"):
        load_samples(__file__, (InputSpec("features", (1, 8)),))


def test_a_file_that_is_no_image_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputSpecError, match=r"is not an image Pillow can read, nor a \.npy array"):
        load_samples(str(tmp_path / "notes.txt"), DIGIT)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path):
    path = _png_header(tmp_path / "bomb.png", 20000, 20000)  # 400 M pixels in a 100-byte file
    with pytest.raises(InputSpecError, match="has more pixels than this tool decodes"):
        load_samples(path, DIGIT)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_past_the_pixel_bound_but_below_pillows_is_refused_too(tmp_path):
    side = int(MAX_IMAGE_PIXELS**0.5) + 100  # past this tool's bound, below twice it (where Pillow raises)
    with pytest.raises(InputSpecError, match=f"is {side}x{side} pixels, more than this tool decodes"):
        load_samples(_png_header(tmp_path / "big.png", side, side), DIGIT)


def test_an_image_within_the_bound_is_read(tmp_path):
    feed, _ = load_samples(_png_header(tmp_path / "small.png", 28, 28), DIGIT)  # the same crafted file, small
    assert feed["input"].shape == (1, 28, 28)


# --- .npy --------------------------------------------------------------------------------------------


def test_a_uint8_npy_is_scaled_like_pixels_and_one_sample_gets_a_batch(tmp_path):
    pixels = np.full((28, 28), 255, np.uint8)
    np.save(tmp_path / "digit.npy", pixels)
    feed, notes = load_samples(str(tmp_path / "digit.npy"), DIGIT)
    assert feed["input"].shape == (1, 28, 28) and feed["input"].dtype == np.float32 and np.all(feed["input"] == 1.0)
    assert notes == ["digit.npy: uint8 pixels scaled from 0..255 to [0, 1], as MNIST loaders do"]


def test_a_float_npy_batch_is_used_as_it_is(tmp_path):
    batch = np.random.default_rng(0).random((3, 28, 28)) * 7  # float64, not in [0, 1]: left alone
    np.save(tmp_path / "batch.npy", batch)
    feed, notes = load_samples(str(tmp_path / "batch.npy"), DIGIT)
    assert feed["input"].dtype == np.float32 and np.allclose(feed["input"], batch)
    assert notes == ["batch.npy: float64 array used as is"]


def test_a_half_precision_input_gets_its_own_dtype_with_a_note(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    feed, notes = load_samples(str(tmp_path / "x.npy"), (InputSpec("x", (1, 4), "float16"),))
    assert feed["x"].dtype == np.float16 and notes[-1] == "cast to float16, the input's dtype"


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((28, 28, 3)), r"has shape \(28, 28, 3\): give \(28 x 28\) or \(N, 28 x 28\)"),
        (np.zeros((2, 27, 28)), "has shape"),
        (np.zeros(28 * 28), "has shape"),
        (np.full((28, 28), np.nan, np.float32), "holds NaN or Inf values"),
        (np.full((1, 28, 28), np.inf), "holds NaN or Inf values"),
        (np.zeros((28, 28), bool), "holds bool, not real numbers"),
        (np.zeros((28, 28), np.complex64), "complex numbers"),
    ],
    ids=["rgb-shape", "wrong-height", "flat", "nan", "inf", "bool", "complex"],
)
def test_an_npy_that_cannot_feed_the_model_is_refused(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(InputSpecError, match=message):
        load_samples(str(tmp_path / "x.npy"), DIGIT)


def test_a_model_with_two_inputs_needs_an_npz(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    specs = (InputSpec("a", (1, 4)), InputSpec("b", (1, 4)))
    with pytest.raises(InputSpecError, match=r"takes 2 inputs \(a, b\): give an .npz with one array per input"):
        load_samples(str(tmp_path / "x.npy"), specs)


# --- .npz --------------------------------------------------------------------------------------------

TWO = (InputSpec("image", (1, 4)), InputSpec("ids", (1, 3), "int64", (0, 9)))


def test_an_npz_holds_one_array_per_input(tmp_path):
    image, ids = np.random.default_rng(0).random((5, 4), dtype=np.float32), np.arange(15).reshape(5, 3) % 10
    np.savez(tmp_path / "x.npz", ids=ids, image=image)  # in any order
    feed, notes = load_samples(str(tmp_path / "x.npz"), TWO)
    assert np.array_equal(feed["image"], image) and np.array_equal(feed["ids"], ids) and list(feed) == ["image", "ids"]
    assert notes == ["x.npz: one array per input (image, ids)"]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"image": np.zeros((2, 4), np.float32)}, "give one array per input"),
        ({"image": np.zeros((2, 5), np.float32), "ids": np.zeros((2, 3), np.int64)}, "must have shape"),
        ({"image": np.zeros((2, 4), np.float32), "ids": np.zeros((3, 3), np.int64)}, "same number of samples"),
        ({"image": np.zeros((2, 4), np.float32), "ids": np.zeros((2, 3), np.float32)}, "give integers"),
    ],
    ids=["missing-input", "wrong-shape", "counts-differ", "float-ids"],
)
def test_an_npz_that_does_not_fit_the_inputs_is_refused(tmp_path, arrays, message):
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(InputSpecError, match=message):
        load_samples(str(tmp_path / "x.npz"), TWO)


def test_an_npz_holding_nan_is_refused_like_an_npy(tmp_path):
    np.savez(tmp_path / "x.npz", image=np.full((1, 4), np.nan, np.float32), ids=np.zeros((1, 3), np.int64))
    with pytest.raises(InputSpecError, match="NaN or Inf"):
        load_samples(str(tmp_path / "x.npz"), TWO)


# --- check_input_path --------------------------------------------------------------------------------


def test_check_input_path_gives_the_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    assert check_input_path(str(tmp_path / "x.png")) == tmp_path / "x.png"


def test_check_input_path_refuses_a_missing_file_and_a_folder(tmp_path):
    with pytest.raises(InputSpecError, match=r"does not exist .*give an image, a \.npy file or 'random'"):
        check_input_path(str(tmp_path / "missing.png"))
    with pytest.raises(InputSpecError, match="is not a file"):
        check_input_path(str(tmp_path))
    with pytest.raises(InputSpecError, match="does not exist"):
        load_samples("randomly", DIGIT)  # only the exact word draws
