"""Inputs for `predict`: an image, a .npy array, or `random`.

Images are read as MNIST loaders do: converted to grayscale, resized to the model's
(height, width) when they differ, and scaled from 0..255 to [0, 1]. Every conversion
made is returned as a note, so the output can say what was done to the picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputSpecError

MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # decoded before it is resized: a bound far above any photo, far below memory


def load_samples(spec: str, sample_shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A batch (N, *sample_shape) of float32 samples from ``spec``, and notes on what was done."""
    if spec == "random":
        from .inputs import seeded_batches

        x = next(seeded_batches(sample_shape, "float32", seed, batch_size=1, samples=1))
        return x, [f"a random sample, uniform in [0, 1), seed {seed}"]
    path = check_input_path(spec)
    if path.suffix.lower() == ".npy":
        samples, notes = _npy(path, sample_shape)
    else:
        samples, notes = _image(path, sample_shape)
    if not np.isfinite(samples).all():
        raise InputSpecError(f"{path} holds NaN or Inf values: a prediction on them means nothing")
    return samples, notes


def check_input_path(spec: str) -> Path:
    """The input file, or InputSpecError saying why it cannot be one."""
    path = Path(spec)
    if not path.exists():
        raise InputSpecError(f"input {spec} does not exist (give an image, a .npy file or 'random')")
    if not path.is_file():
        raise InputSpecError(f"input {spec} is not a file (give an image, a .npy file or 'random')")
    return path


def _npy(path: Path, sample_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    from .arrays import read_arrays

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
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InputSpecError("reading images needs Pillow: pip install pillow") from None
    if len(sample_shape) != 2:
        raise InputSpecError(f"this model takes samples of shape {sample_shape}, not 2-D grayscale images")
    height, width = sample_shape
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputSpecError(
                    f"{path} is {image.width}x{image.height} pixels, more than this tool decodes "
                    f"({MAX_IMAGE_PIXELS:,}): resize it first"
                )
            image.load()
            notes = [f"{path.name}: {image.format} image, {image.width}x{image.height} {image.mode}"]
            if image.mode != "L":
                notes.append(f"converted {image.mode} to grayscale")
                image = image.convert("L")
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
    return (pixels / 255.0)[None], notes
