"""Images in one folder per class (``PATH/cat/1.png``, ``PATH/dog/2.jpg``): an image task.

The user's own test and validation splits are folders of the same layout (``[data] test_path``,
``val_path``), holding some or all of the classes.

A class folder's images may sit in subfolders of it (``PATH/cat/2019/1.png``), as torchvision's
ImageFolder and Keras read them. Hidden folders and files (a name starting with ``.``, such as
Jupyter's ``.ipynb_checkpoints``, and the ``__MACOSX`` folder a macOS zip leaves) are no class and
no image: they are left out with a note, as are images lying beside the class folders.

Every image is resized to ``[data] image_size`` (a square) or to the most common size among the
images, with a note when some differ; grayscale images give one channel unless some image has
colour. Pixels are scaled by their bit depth (automl_plugins._pixels).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, PositiveInt

import automl
from automl import DataPath, LabeledArrays, RawInputs, UsageError
from automl_plugins._files import FileOptions, data_path
from automl_plugins._pixels import GRAYSCALE_MODES, depth_scale, oriented_size, read_pixels

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pbm", ".pgm", ".ppm",
                  ".pnm"}
# Folder and file names listed in a note, at most.
SHOWN_NAMES = 5


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _listed(names: list[str]) -> str:
    more = len(names) - SHOWN_NAMES
    return ", ".join(names[:SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")


@dataclass
class ClassImages:
    """The images of each class folder, sorted, and what was left out (for notes)."""

    images: dict[str, list[Path]]
    hidden: list[str] = field(default_factory=list)  # hidden folders and files, relative to the root
    hidden_images: int = 0
    loose: list[str] = field(default_factory=list)  # images beside the class folders


def _raise(error: OSError) -> None:
    raise error


def _count_images(folder: Path) -> int:
    return sum(_is_image(name) for _, _, files in os.walk(folder, onerror=_raise) for name in files)


def _walk(folder: Path, root: Path, found: ClassImages) -> list[Path]:
    """The images under ``folder``, in subfolders too (links followed), hidden ones left out and
    recorded in ``found``."""
    images = []
    for directory, folders, files in os.walk(folder, onerror=_raise, followlinks=True):
        here = Path(directory)
        for name in sorted(folders):
            if _hidden(name):
                found.hidden.append(str((here / name).relative_to(root)))
                found.hidden_images += _count_images(here / name)
        folders[:] = sorted(name for name in folders if not _hidden(name))  # os.walk descends into these
        for name in sorted(files):
            if _is_image(name) and _hidden(name):
                found.hidden.append(str((here / name).relative_to(root)))
                found.hidden_images += 1
            elif _is_image(name):
                images.append(here / name)
    return images


def class_images(root: Path, key: str = "path") -> ClassImages:
    """Each class folder's images; UsageError, naming ``root`` as ``[data] key``'s folder, when
    there are no class folders, a class has no image, or the classes are one level further down."""
    entries = sorted(root.iterdir())
    found = ClassImages({})
    for entry in entries:
        if _hidden(entry.name):
            if entry.is_dir() or _is_image(entry.name):
                found.hidden.append(entry.name)
                found.hidden_images += 1 if entry.is_file() else _count_images(entry)
        elif entry.is_dir():
            found.images[entry.name] = _walk(entry, root, found)
        elif _is_image(entry.name):
            found.loose.append(entry.name)
    if not found.images:
        raise UsageError(f"[data] {key} {root} has no class folders; expected {root}/CLASS/IMAGE.png")
    empty = [name for name, paths in found.images.items() if not paths]
    if empty:
        raise UsageError(f"[data] {key} {root}: class folder(s) {', '.join(empty)} hold no images "
                         f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(found.images) == 1:
        (name,) = found.images
        inner = sorted(entry.name for entry in (root / name).iterdir() if entry.is_dir() and not _hidden(entry.name))
        if len(inner) > 1:
            raise UsageError(f"[data] {key} {root} has one class folder, {name!r}, whose subfolders "
                             f"({_listed(inner)}) hold the images: are those the classes? Then set "
                             f"[data] {key} to {root / name}")
    return found


def _notes(root: Path, found: ClassImages) -> list[str]:
    notes = []
    if found.hidden:
        notes.append(f"{root}: hidden folders and files are no class and no image: left out "
                     f"{_listed(found.hidden)} ({found.hidden_images} image(s))")
    if found.loose:
        notes.append(f"{root}: {len(found.loose)} image(s) lie beside the class folders, in no class: left "
                     f"out {_listed(found.loose)}")
    return notes


def _headers(paths: list[Path]) -> tuple[list[tuple[int, int]], set[str]]:
    """Each image's size as shown (width, height), and the images' modes, from the headers."""
    from PIL import Image

    sizes, modes = [], set()
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes.append(oriented_size(image))
                modes.add(image.mode)
        except (OSError, Image.DecompressionBombError) as exc:  # PIL's UnidentifiedImageError included
            raise UsageError(f"{path} is not a readable image: {exc}") from None
    return sizes, modes


def _raw_inputs(size: tuple[int, int], modes: set[str], channels: int) -> RawInputs:
    """What one sample is, from an image file: the steps a model cannot take itself, and the scale
    of the values the user's files hold (one bit depth), else 1 (values already 0..1)."""
    scales = {depth_scale(mode) for mode in modes}
    scale = scales.pop() if len(scales) == 1 else 1.0
    values = {1 / 255: "pixel values 0..255", 1 / 65535: "16-bit pixel values 0..65535",
              1.0: "pixel values as stored (32-bit floats)" if modes == {"F"} else
              "pixel values scaled by each image's bit depth to 0..1 (8-bit / 255, 16-bit / 65535)"}[scale]
    layout = "[1, H, W] (grayscale)" if channels == 1 else "[3, H, W] (RGB; a one-channel image repeated in each)"
    width, height = size
    return RawInputs(scale=scale, description=(
        f"{values} of an image decoded with PIL, turned as its EXIF orientation says, transparency composited "
        f"onto black, resized to {width}x{height} (Image.resize with its default resampling), laid out as {layout}"))


def _common_size(root: Path, paths: list[Path], sizes: list[tuple[int, int]]) -> tuple[tuple[int, int], list[str]]:
    """The most common size (the first image's among equals) and a note when some images differ."""
    counts = Counter(sizes)
    size = max(counts, key=lambda each: (counts[each], -sizes.index(each)))
    others = [str(path.relative_to(root)) for path, each in zip(paths, sizes, strict=True) if each != size]
    if not others:
        return size, []
    return size, [f"{root}: {len(others)} of {len(paths)} images are not {size[0]}x{size[1]} (width x height), "
                  f"the most common size, and are resized to it ({_listed(others)}); set [data] image_size "
                  "to resize every image to a square of your choice"]


def _read_folder(root: Path, key: str) -> ClassImages:
    """``class_images(root)``, an unreadable entry named as the ``[data] key`` folder's."""
    try:
        return class_images(root, key)
    except OSError as exc:
        raise UsageError(f"[data] {key} {root}: cannot read {exc.filename}: {exc.strerror}") from None


class ImageFolderOptions(FileOptions):
    path: DataPath = Field(description="a folder with one subfolder of images per class")
    image_size: PositiveInt | None = None  # resize to this square; default: the most common size


class ImageFolder:
    name = "imagefolder"
    options = ImageFolderOptions

    def load(self, seed: int, options: ImageFolderOptions) -> LabeledArrays:
        root = data_path(options, self.name, "folder")
        found = _read_folder(root, "path")
        classes = list(found.images)
        notes = _notes(root, found)
        paths = [path for class_paths in found.images.values() for path in class_paths]
        labels = [np.full(len(class_paths), label, dtype=np.int64)
                  for label, class_paths in enumerate(found.images.values())]
        counts: dict[str, int] = {}
        for key in options.split_paths():  # the user's own splits: folders of the same classes
            split_root = data_path(options, self.name, "folder", key=key)
            given = _read_folder(split_root, key)
            unknown = sorted(set(given.images) - set(classes))
            if unknown:
                raise UsageError(f"[data] {key} {split_root}: class folder(s) {', '.join(unknown)} are not "
                                 f"classes of [data] path {root} ({', '.join(classes)})")
            notes += _notes(split_root, given)
            for name, class_paths in given.images.items():
                paths += class_paths
                labels.append(np.full(len(class_paths), classes.index(name), dtype=np.int64))
            counts[key] = sum(map(len, given.images.values()))
        sizes, modes = _headers(paths)
        if options.image_size:
            size = (options.image_size, options.image_size)
        else:
            size, size_notes = _common_size(root, paths, sizes)
            notes += size_notes
        channels = 1 if modes <= GRAYSCALE_MODES else 3
        x = np.stack([read_pixels(path, size, channels) for path in paths]).transpose(0, 3, 1, 2)  # [N, C, H, W]
        return LabeledArrays(np.ascontiguousarray(x, dtype=np.float32), np.concatenate(labels), "image",
                             class_names=tuple(classes), notes=tuple(notes), raw=_raw_inputs(size, modes, channels),
                             val_samples=counts.get("val_path", 0), test_samples=counts.get("test_path", 0))


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(ImageFolder())
