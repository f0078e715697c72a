"""Images in one folder per class (``PATH/cat/1.png``, ``PATH/dog/2.jpg``): an image task.

Every image is resized to ``[data] image_size`` (a square) or to the size of the first image;
grayscale images give one channel unless some image has colour.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, PositiveInt

import automl
from automl import DataPath, LabeledArrays, RawInputs, UsageError
from automl_plugins._files import FileOptions, data_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
GRAYSCALE_MODES = {"1", "L", "I", "I;16", "F"}


def _class_images(root: Path) -> dict[str, list[Path]]:
    folders = sorted(entry for entry in root.iterdir() if entry.is_dir())
    if not folders:
        raise UsageError(f"[data] path {root} has no class folders; expected {root}/CLASS/IMAGE.png")
    images = {folder.name: sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
              for folder in folders}
    empty = [name for name, paths in images.items() if not paths]
    if empty:
        raise UsageError(f"[data] path {root}: class folder(s) {', '.join(empty)} hold no images "
                         f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


class ImageFolderOptions(FileOptions):
    path: DataPath = Field(description="a folder with one subfolder of images per class")
    image_size: PositiveInt | None = None  # resize to this square; default: the first image's size


class ImageFolder:
    name = "imagefolder"
    options = ImageFolderOptions

    def load(self, seed: int, options: ImageFolderOptions) -> LabeledArrays:
        from PIL import Image

        root = data_path(options, self.name)
        images = _class_images(root)
        size = (options.image_size,) * 2 if options.image_size else None
        pixels, labels, grayscale = [], [], True
        for label, paths in enumerate(images.values()):
            for path in paths:
                try:
                    with Image.open(path) as image:
                        grayscale &= image.mode in GRAYSCALE_MODES
                        size = size or image.size
                        pixels.append(np.asarray(image.convert("RGB").resize(size)))
                except OSError as exc:  # PIL's UnidentifiedImageError included
                    raise UsageError(f"{path} is not a readable image: {exc}") from None
                labels.append(label)
        x = np.stack(pixels).transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # [N, 3, H, W]
        assert size is not None  # _class_images found an image
        raw = RawInputs(scale=1 / 255, description=_pixels(size, grayscale))
        return LabeledArrays(x[:, :1] if grayscale else x, np.array(labels), "image",
                             class_names=tuple(images), raw=raw)


def _pixels(size: tuple[int, int], grayscale: bool) -> str:
    """What one sample is, from an image file: the steps a model cannot take itself."""
    width, height = size
    channels = "channel 0 (R) only, the images being grayscale: [1, H, W]" if grayscale else "[3, H, W] (RGB)"
    return (f"pixel values 0..255 of an image decoded with PIL, converted to RGB (Image.convert('RGB')), "
            f"resized to {width}x{height} (Image.resize with its default resampling), laid out as {channels}")


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(ImageFolder())
