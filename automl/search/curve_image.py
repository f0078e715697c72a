"""A trial's learning curve as a small PNG, drawn with Pillow inside the trial.

Matplotlib takes over a hundred milliseconds for this one figure, longer than a whole trial of a
small model, and every trial draws one. Pillow draws the two lines, the frame and a few labels
about 20x faster (benchmarks/trial_parts.py); the report's figures, drawn once per study, stay
with matplotlib. The image has a palette of its five colours: a byte a pixel, not three, makes
its PNG compress about four times as fast.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 480, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 56, 30, 40  # margins around the plot area
# Palette indices; PALETTE lists their RGB values in this order.
BACKGROUND, TEXT, FRAME_COLOR, ACCURACY_COLOR, LOSS_COLOR = range(5)
PALETTE = [(255, 255, 255), (0, 0, 0), (90, 90, 90), (31, 119, 180), (255, 127, 14)]


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=12)


def _scale(values: Sequence[float], low: float, high: float) -> list[float]:
    """``values`` mapped to pixel rows, ``low`` at the bottom of the plot area, ``high`` at the top."""
    span = (high - low) or 1.0
    return [HEIGHT - BOTTOM - (v - low) / span * (HEIGHT - TOP - BOTTOM) for v in values]


def _columns(count: int) -> list[float]:
    step = (WIDTH - LEFT - RIGHT) / max(count - 1, 1)
    return [LEFT + i * step for i in range(count)]


def _series(draw: ImageDraw.ImageDraw, xs: list[float], ys: list[float], color: int) -> None:
    if len(xs) > 1:
        draw.line(list(zip(xs, ys, strict=True)), fill=color, width=2)
    for x, y in zip(xs, ys, strict=True):
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=color)


def draw_curve(val_accuracy: Sequence[float], train_loss: Sequence[float], title: str, path: Path) -> None:
    """Validation accuracy (left axis) and training loss (right axis) per epoch, written to ``path``.

    ``train_loss`` has one value per epoch of ``val_accuracy``, or none (no right axis then)."""
    image = Image.new("P", (WIDTH, HEIGHT), BACKGROUND)
    image.putpalette([channel for rgb in PALETTE for channel in rgb])
    draw = ImageDraw.Draw(image)
    font = _font()
    draw.rectangle((LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM), outline=FRAME_COLOR)
    draw.text((WIDTH / 2, 6), title, fill=TEXT, font=font, anchor="mt")
    epochs = len(val_accuracy)
    xs = _columns(epochs)
    for x, label in ((xs[0], "1"), (xs[-1], str(epochs))):
        draw.text((x, HEIGHT - BOTTOM + 4), label, fill=TEXT, font=font, anchor="mt")
    draw.text((WIDTH / 2, HEIGHT - 16), "epoch", fill=TEXT, font=font, anchor="mt")
    # (values, colour, name, which side): each line has its own axis, labelled with its range.
    axes = [(val_accuracy, ACCURACY_COLOR, "val accuracy", "left")]
    if train_loss:
        axes.append((train_loss, LOSS_COLOR, "train loss", "right"))
    for values, color, name, side in axes:
        low, high = min(values), max(values)
        _series(draw, xs, _scale(values, low, high), color)
        edge, outside = (LEFT, LEFT - 4) if side == "left" else (WIDTH - RIGHT, WIDTH - RIGHT + 4)
        align, inward = ("r", "l") if side == "left" else ("l", "r")
        draw.text((outside, TOP), f"{high:.3g}", fill=color, font=font, anchor=align + "t")
        draw.text((outside, HEIGHT - BOTTOM), f"{low:.3g}", fill=color, font=font, anchor=align + "b")
        draw.text((edge, TOP - 4), name, fill=color, font=font, anchor=inward + "b")
    image.save(path, format="PNG")
