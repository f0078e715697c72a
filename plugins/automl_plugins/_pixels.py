"""One image file as the pixels a model reads: float32 ``[H, W, C]`` in [0, 1], C = 1 or 3.

Images come in many modes (Pillow's names): 1-bit, 8-bit grayscale (``L``) and colour, palettes
(``P``), 16-bit grayscale (``I;16*``, as microscopes, X-ray and depth cameras write PNG and TIFF),
32-bit integers (``I``) and floats (``F``), CMYK, YCbCr, and any of them with transparency. Pillow's
``convert("RGB")`` clamps every value above 255 of a 16-bit image to 255 (a 16-bit folder would
load as blank images), so each mode is scaled by its own bit depth here:

- 1-bit, 8-bit and colour modes: value / 255 (colour spaces through Pillow's conversion to RGB);
- 16-bit: value / 65535; 32-bit integers (``I``, which is how Pillow opens some 16-bit files):
  value / 65535 when every value fits in 16 bits, else refused (no bit depth to scale by);
- 32-bit floats (``F``): as stored (automl standardizes each channel from the train split);
- transparency (``LA``, ``RGBA``, ``PA``, a palette with a transparent colour): composited onto
  black, so that what lies under a fully transparent pixel (often leftovers) never reaches a model.

The EXIF orientation tag (phones store portrait photos turned, with a tag) is applied first, as an
image viewer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automl import UsageError

# Modes whose pixels are one grayscale channel (with or without alpha).
GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
# Modes of 8 bits (or fewer) per channel, which Pillow converts to "L" or "RGB" without loss.
EIGHT_BIT = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
# The EXIF tag that says how a photo is turned, and its values that swap width and height.
ORIENTATION_TAG = 0x0112
TRANSPOSED = {5, 6, 7, 8}


def depth_scale(mode: str) -> float:
    """What read_pixels multiplies a pixel value of ``mode`` by (its bit depth's range)."""
    if mode in SIXTEEN_BIT or mode == "I":
        return 1 / 65535
    return 1.0 if mode == "F" else 1 / 255


def has_alpha(image: Any) -> bool:
    return image.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info)


def oriented_size(image: Any) -> tuple[int, int]:
    """(width, height) as the image is shown: its EXIF orientation applied (read from the header)."""
    width, height = image.size
    return (height, width) if image.getexif().get(ORIENTATION_TAG) in TRANSPOSED else (width, height)


def _resized(channel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if channel.shape[::-1] == size:
        return channel
    # Pillow's "F" mode resamples 32-bit floats with the filter it uses for 8-bit images.
    return np.asarray(Image.fromarray(channel, mode="F").resize(size, Image.Resampling.BICUBIC))


def _scaled(image: Any, path: Path) -> np.ndarray:
    """The image's values as float32 ``[H, W]`` or ``[H, W, C]``, scaled by its bit depth."""
    mode = image.mode
    if mode in SIXTEEN_BIT:
        return np.asarray(image).astype(np.float32) / 65535.0
    if mode == "I":
        values = np.asarray(image)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise UsageError(f"{path}: a 32-bit integer image (mode I) with values {low}..{high}, beyond "
                             "16 bits, has no bit depth to scale by; save it as a 16-bit or 8-bit image, "
                             "or as 32-bit floats (mode F)")
        return values.astype(np.float32) / 65535.0
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if has_alpha(image):
        gray = mode in GRAYSCALE_MODES
        rgba = np.asarray(image.convert("LA" if gray else "RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :-1] * rgba[..., -1:]  # over black
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def read_pixels(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """The image at ``path`` as float32 ``[H, W, channels]`` resized to ``size`` (width, height);
    grayscale is repeated into 3 channels when ``channels`` is 3. UsageError when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in EIGHT_BIT and not has_alpha(image):
                # Resampled in 8 bits, as Pillow does by default.
                return np.asarray(image.convert("L" if channels == 1 else "RGB").resize(size),
                                  dtype=np.float32).reshape(size[1], size[0], channels) / 255.0
            values = _scaled(image, path)
    except (OSError, Image.DecompressionBombError) as exc:  # PIL's UnidentifiedImageError included
        raise UsageError(f"{path} is not a readable image: {exc}") from None
    if values.ndim == 2:
        values = values[..., None]
    resized = np.stack([_resized(np.ascontiguousarray(values[..., c]), size) for c in range(values.shape[-1])],
                       axis=-1)
    return np.repeat(resized, channels, axis=-1) if resized.shape[-1] < channels else resized
