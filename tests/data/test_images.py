"""Image folders as cameras, scanners, notebooks and zip tools leave them: every bit depth and mode
scaled by its own range, EXIF orientation applied, hidden folders and stray images left out with a
note, nested class folders read, and images of another size named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automl import UsageError
from automl_plugins._pixels import read_pixels
from automl_plugins.imagefolder import ImageFolder, ImageFolderOptions
from datafiles import write_pngs


def _load(root: Path, **options):
    return ImageFolder().load(0, ImageFolderOptions(path=root, **options))


def _palette_image() -> Image.Image:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    return image


def _transparent_palette_image() -> Image.Image:
    image = _palette_image()
    image.info["transparency"] = 1  # colour 1 is fully transparent
    return image


# (what the image is, how to make it, the pixel automl reads at (0, 0), in a colour dataset); saved
# as TIFF, which holds every mode, but a palette's transparency, which PNG holds.
MODES = [
    ("1-bit", lambda: Image.new("1", (4, 4), 1), [1.0, 1.0, 1.0]),
    ("8-bit gray", lambda: Image.new("L", (4, 4), 51), [0.2, 0.2, 0.2]),
    ("16-bit gray", lambda: Image.fromarray(np.full((4, 4), 30000, dtype=np.uint16)), [30000 / 65535] * 3),
    ("32-bit int in 16 bits", lambda: Image.fromarray(np.full((4, 4), 40000, dtype=np.int32)), [40000 / 65535] * 3),
    ("32-bit float", lambda: Image.fromarray(np.full((4, 4), 0.25, dtype=np.float32)), [0.25] * 3),
    ("palette", _palette_image, [1.0, 128 / 255, 0.0]),
    ("palette, transparent colour", _transparent_palette_image, [0.0, 0.0, 0.0]),
    ("gray + alpha", lambda: Image.new("LA", (4, 4), (200, 0)), [0.0, 0.0, 0.0]),
    ("RGBA half transparent", lambda: Image.new("RGBA", (4, 4), (255, 0, 102, 51)), [0.2, 0.0, 0.08]),
    ("CMYK white", lambda: Image.new("CMYK", (4, 4), (0, 0, 0, 0)), [1.0, 1.0, 1.0]),
    ("RGB", lambda: Image.new("RGB", (4, 4), (255, 51, 0)), [1.0, 0.2, 0.0]),
]


@pytest.mark.parametrize(("make", "expected"), [case[1:] for case in MODES], ids=[case[0] for case in MODES])
def test_each_mode_is_scaled_by_its_own_range(tmp_path: Path, make, expected: list[float]) -> None:
    image = make()
    path = tmp_path / ("image.png" if "transparency" in image.info else "image.tif")
    image.save(path)
    pixels = read_pixels(path, (4, 4), channels=3)
    assert pixels.shape == (4, 4, 3) and pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[0, 0], expected, atol=2e-3)


def test_sixteen_bit_classes_that_differ_in_brightness_keep_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, low, high in (("dim", 1000, 9000), ("bright", 30000, 60000)):
        (tmp_path / "cells" / name).mkdir(parents=True)
        for number in range(5):
            values = rng.integers(low, high, (6, 6)).astype(np.uint16)
            Image.fromarray(values).save(tmp_path / "cells" / name / f"{number}.png")
    arrays = _load(tmp_path / "cells")
    assert arrays.x.shape == (10, 1, 6, 6)
    bright, dim = arrays.x[arrays.y == 0], arrays.x[arrays.y == 1]  # classes in sorted order
    assert dim.max() < 9000 / 65535 + 1e-6 < 30000 / 65535 - 1e-6 < bright.min() and bright.max() < 1.0
    first = np.asarray(Image.open(tmp_path / "cells" / "bright" / "0.png"), dtype=np.float32) / 65535
    np.testing.assert_allclose(arrays.x[0, 0], first, rtol=1e-6)


def test_a_32_bit_integer_image_beyond_16_bits_is_refused_naming_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "wide.tif"
    Image.fromarray(np.full((4, 4), 70000, dtype=np.int32)).save(path)
    with pytest.raises(UsageError, match=r"wide\.tif: a 32-bit integer image \(mode I\) with values 70000\.\.70000"):
        read_pixels(path, (4, 4), channels=1)


def test_sixteen_bit_and_eight_bit_images_share_one_scale(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (4, 4), 255).save(tmp_path / "a" / "eight.png")
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "b" / "sixteen.png")
    assert _load(tmp_path).x.reshape(2, -1).max(axis=1).tolist() == [1.0, 1.0]


def test_exif_orientation_turns_the_photo_as_a_viewer_shows_it(tmp_path: Path) -> None:
    for name in ("portrait", "other"):
        (tmp_path / name).mkdir()
    stored = np.zeros((2, 4), dtype=np.uint8)  # stored 4 wide, 2 high, its left column white
    stored[:, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to view
    Image.fromarray(stored).save(tmp_path / "portrait" / "0.png", exif=exif)
    Image.fromarray(stored).save(tmp_path / "portrait" / "1.png", exif=exif)
    Image.new("L", (2, 4)).save(tmp_path / "other" / "0.png")
    arrays = _load(tmp_path)
    assert arrays.x.shape == (3, 1, 4, 2) and not arrays.notes  # every image 2 wide, 4 high as shown
    assert arrays.x[1, 0, 0].tolist() == [1.0, 1.0], "the stored left column is the top row once turned"


def test_hidden_folders_and_files_are_no_class_and_no_image(tmp_path: Path) -> None:
    root = write_pngs(tmp_path / "shapes", {"circle": 4, "square": 4, ".ipynb_checkpoints": 3})
    (root / "__MACOSX" / "circle").mkdir(parents=True)
    (root / "__MACOSX" / "circle" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "circle" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # not an image at all
    (root / "square" / ".thumbs").mkdir()
    Image.new("L", (8, 8)).save(root / "square" / ".thumbs" / "0.png")
    arrays = _load(root)
    assert arrays.class_names == ("circle", "square") and len(arrays.y) == 8
    (note,) = arrays.notes
    assert note.startswith(f"{root}: hidden folders and files are no class and no image: left out")
    for name in (".ipynb_checkpoints", "__MACOSX", "circle/._0.png", "square/.thumbs"):
        assert name in note
    assert "(6 image(s))" in note


def test_images_in_subfolders_of_a_class_belong_to_it(tmp_path: Path) -> None:
    root = write_pngs(tmp_path / "pets", {"cat": 3, "dog": 3})
    (root / "cat" / "2019" / "june").mkdir(parents=True)
    Image.new("L", (8, 8), 200).save(root / "cat" / "2019" / "june" / "0.png")
    Image.new("L", (8, 8), 200).save(root / "loose.png")
    arrays = _load(root)
    assert np.bincount(arrays.y).tolist() == [4, 3]
    assert arrays.notes == (f"{root}: 1 image(s) lie beside the class folders, in no class: left out loose.png",)


def test_one_folder_whose_subfolders_are_the_classes_is_named(tmp_path: Path) -> None:
    write_pngs(tmp_path / "data" / "train", {"cat": 2, "dog": 2})
    with pytest.raises(UsageError, match=r"one class folder, 'train', whose subfolders \(cat, dog\) hold the "
                                         rf"images: are those the classes\? Then set \[data\] path to {tmp_path}"):
        _load(tmp_path / "data")


def test_images_of_another_size_are_resized_to_the_most_common_with_a_note(tmp_path: Path) -> None:
    root = write_pngs(tmp_path / "images", {"a": 3, "b": 3}, side=8)
    Image.new("L", (4, 3)).save(root / "a" / "00.png")  # sorted first, as in a folder listing
    arrays = _load(root)
    assert arrays.x.shape == (7, 1, 8, 8)
    assert arrays.notes == (f"{root}: 1 of 7 images are not 8x8 (width x height), the most common size, and are "
                            "resized to it (a/00.png); set [data] image_size to resize every image to a square "
                            "of your choice",)
    assert not _load(root, image_size=4).notes


def test_a_file_that_is_no_image_is_named(tmp_path: Path) -> None:
    root = write_pngs(tmp_path / "images", {"a": 2, "b": 2})
    (root / "b" / "broken.jpg").write_text("not a jpeg")
    with pytest.raises(UsageError, match=r"broken\.jpg is not a readable image"):
        _load(root)
