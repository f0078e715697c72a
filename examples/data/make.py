"""Write the small data files the study files in studies/ run on; run it again to remake them.

    python examples/data/make.py

- bars.npz: 12x12 grayscale images of a horizontal, vertical or diagonal bar in noise (npz, image)
- wine.csv: scikit-learn's bundled wine measurements, classes named in the label column (csv)
- reviews.tsv: short generated film reviews, positive or negative (text)
- shapes/: 16x16 PNGs of circles, squares and triangles, one folder per class (imagefolder)
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).parent
SEED = 0


def bars(rng: np.random.Generator, per_class: int = 200, side: int = 12) -> None:
    images = rng.normal(60, 45, size=(3 * per_class, 1, side, side))
    labels = np.repeat(np.arange(3), per_class)
    for image, label in zip(images, labels):
        offset = rng.integers(2, side - 2)
        if label == 0:
            image[0, offset, :] += 70
        elif label == 1:
            image[0, :, offset] += 70
        else:
            image[0] += 70 * np.eye(side, k=int(offset) - side // 2)
    order = rng.permutation(len(labels))
    np.savez_compressed(HERE / "bars.npz", x=np.clip(images, 0, 255).astype(np.uint8)[order],
                        y=labels[order])


def wine() -> None:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    with (HERE / "wine.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*bunch.feature_names, "label"])
        for features, target in zip(bunch.data, bunch.target):
            writer.writerow([*(f"{value:g}" for value in features), bunch.target_names[target]])


def reviews(rng: np.random.Generator, count: int = 600) -> None:
    subjects = ["the film", "this movie", "the plot", "the acting", "the ending", "the music"]
    words = {"positive": ["great", "wonderful", "moving", "funny", "brilliant", "a delight"],
             "negative": ["dull", "awful", "boring", "a mess", "clumsy", "far too long"]}
    fillers = ["honestly", "i think", "overall", "to be fair", "", ""]
    with (HERE / "reviews.tsv").open("w", newline="") as file:
        writer = csv.writer(file, delimiter="\t")
        writer.writerow(["text", "label"])
        for _ in range(count):
            label = str(rng.choice(list(words)))
            text = f"{rng.choice(fillers)} {rng.choice(subjects)} was {rng.choice(words[label])}"
            writer.writerow([text.strip(), label])


def shapes(rng: np.random.Generator, per_class: int = 40, side: int = 16) -> None:
    for name in ("circle", "square", "triangle"):
        folder = HERE / "shapes" / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = Image.new("L", (side, side), int(rng.integers(0, 60)))
            draw = ImageDraw.Draw(image)
            low, high = int(rng.integers(1, 5)), int(rng.integers(11, 15))
            fill = int(rng.integers(160, 256))
            if name == "circle":
                draw.ellipse([low, low, high, high], fill=fill)
            elif name == "square":
                draw.rectangle([low, low, high, high], fill=fill)
            else:
                draw.polygon([(low, high), (high, high), ((low + high) // 2, low)], fill=fill)
            image.save(folder / f"{index:03d}.png")


if __name__ == "__main__":
    rng = np.random.default_rng(SEED)
    bars(rng)
    wine()
    reviews(rng)
    shapes(rng)
