"""Inputs for `predict`: an image, a .npy array, an .npz of named arrays, or `random`.

Images are read as MNIST loaders do: converted to grayscale (or to RGB for a 3-channel
input of shape (3, H, W) or (H, W, 3)), resized to the model's (height, width) when they
differ, and scaled from 0..255 to [0, 1]. Every conversion made is returned as a note, so
the output can say what was done to the picture. An image or a .npy feeds a model with
one input; an .npz holds one array per input name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputSpecError
from .interface import FLOAT_DTYPES, InputSpec
from .runners.base import carrier

MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # decoded before it is resized: a bound far above any photo, far below memory


def load_samples(spec: str, specs: tuple[InputSpec, ...], seed: int = 0) -> tuple[dict[str, np.ndarray], list[str]]:
    """A batch from ``spec`` (an array per input, by name), and notes on what was done."""
    if spec == "random":
        from .verification.inputs import seeded_batches

        feed = next(seeded_batches(specs, seed, batch_size=1, samples=1))
        drawn = (
            "uniform in [0, 1)"
            if len(specs) == 1 and specs[0].dtype in FLOAT_DTYPES
            else "; ".join(s.describe() for s in specs)
        )
        return feed, [f"a random sample, {drawn}, seed {seed}"]
    path = check_input_path(spec)
    if path.suffix.lower() == ".npz":
        from .verification.inputs import InputSet

        loaded = InputSet.load(path, specs, batch_size=None)
        feed = {s.name: np.concatenate([group[s.name] for group in loaded.groups.values()]) for s in specs}
        for name, values in feed.items():
            if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
                raise InputSpecError(f"{path}: {name!r} holds NaN or Inf values: a prediction on them means nothing")
        return feed, [f"{path.name}: one array per input ({', '.join(feed)})"]
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise InputSpecError(f"this model takes {len(specs)} inputs ({names}): give an .npz with one array per input")
    (only,) = specs
    sample_shape = tuple(only.shape[1:])
    if path.suffix.lower() == ".npy":
        samples, notes = _npy(path, sample_shape)
    else:
        samples, notes = _image(path, sample_shape)
    if not np.isfinite(samples).all():
        raise InputSpecError(f"{path} holds NaN or Inf values: a prediction on them means nothing")
    if only.dtype != "float32":
        samples = samples.astype(carrier(only.dtype))
        notes.append(f"cast to {only.dtype}, the input's dtype")
    return {only.name: samples}, notes


def check_input_path(spec: str) -> Path:
    """The input file, or InputSpecError saying why it cannot be one."""
    path = Path(spec)
    if not path.exists():
        raise InputSpecError(f"input {spec} does not exist (give an image, a .npy file or 'random')")
    if not path.is_file():
        raise InputSpecError(f"input {spec} is not a file (give an image, a .npy file or 'random')")
    return path


def _npy(path: Path, sample_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    from .verification.arrays import read_arrays

    arrays = read_arrays(path)  # the header is checked before anything is allocated
    if len(arrays) != 1:
        raise InputSpecError(f"{path} holds {len(arrays)} arrays: give one .npy array")
    (data,) = arrays.values()
    if tuple(data.shape) == sample_shape:
        data = data[None]
    if data.ndim != len(sample_shape) + 1 or tuple(data.shape[1:]) != sample_shape:
        want = " x ".join(map(str, sample_shape))
        raise InputSpecError(f"{path} has shape {tuple(data.shape)}: give ({want}) or (N, {want})")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputSpecError(f"{path} holds {data.dtype}, not real numbers")
    if data.dtype == np.uint8:  # 8-bit pixels, as images are stored
        return np.ascontiguousarray(data.astype(np.float32) / 255.0), [
            f"{path.name}: uint8 pixels scaled from 0..255 to [0, 1], as MNIST loaders do"
        ]
    return np.ascontiguousarray(data.astype(np.float32)), [f"{path.name}: {data.dtype} array used as is"]


def _image(path: Path, sample_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """A grayscale (H, W) or (1, H, W), or an RGB (3, H, W) or (H, W, 3) sample from an image file."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InputSpecError("reading images needs Pillow: pip install pillow") from None
    layout = _layout(sample_shape)
    if layout is None:
        raise InputSpecError(
            f"this model takes samples of shape {sample_shape}: an image fits (H, W), (1, H, W), (3, H, W) or (H, W, 3)"
        )
    mode, height, width = layout
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # a decompression bomb is refused, not decoded
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputSpecError(
                    f"{path} is {image.width}x{image.height} pixels, more than this tool decodes "
                    f"({MAX_IMAGE_PIXELS:,}): resize it first"
                )
            image.load()
            notes = [f"{path.name}: {image.format} image, {image.width}x{image.height} {image.mode}"]
            if image.mode != mode:
                notes.append(f"converted {image.mode} to {'grayscale' if mode == 'L' else 'RGB'}")
                image = image.convert(mode)
            if image.size != (width, height):
                notes.append(f"resized to {width}x{height}")
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except Image.DecompressionBombError:
        raise InputSpecError(
            f"{path} has more pixels than this tool decodes ({MAX_IMAGE_PIXELS:,}): resize it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputSpecError(
            f"{path} is not an image Pillow can read, nor a .npy array ({type(error).__name__})"
        ) from None
    notes.append("values scaled from 0..255 to [0, 1], as MNIST loaders do")
    if mode == "RGB" and sample_shape[0] == 3:
        pixels = pixels.transpose(2, 0, 1)  # channels first, as the input is
    return (pixels / 255.0).reshape(sample_shape)[None], notes


def _layout(sample_shape: tuple[int, ...]) -> tuple[str, int, int] | None:
    """(Pillow mode, height, width) of an image that fits ``sample_shape``; None: no image fits."""
    if len(sample_shape) == 2:
        return "L", *sample_shape
    if len(sample_shape) == 3 and sample_shape[0] in (1, 3):
        return ("L" if sample_shape[0] == 1 else "RGB"), sample_shape[1], sample_shape[2]
    if len(sample_shape) == 3 and sample_shape[2] == 3:
        return "RGB", sample_shape[0], sample_shape[1]
    return None
