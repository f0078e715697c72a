"""Image augmentation on whole batches, on the device the batch already lives on."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """Pad ``[B, C, H, W]`` by ``padding``, crop each image back at a random offset, and flip half
    of them left to right.

    torchvision's transforms work one image at a time on the host; one gather for the whole
    batch keeps the data on the GPU and costs a few kernels per step.
    """
    batch, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding,) * 4, mode="reflect" if padding < min(height, width) else "constant")
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), device=device, generator=generator)
    rows = (torch.arange(height, device=device)[None, :] + offsets[0][:, None])  # [B, H]
    cols = (torch.arange(width, device=device)[None, :] + offsets[1][:, None])   # [B, W]
    flip = torch.rand(batch, device=device, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_index = torch.arange(batch, device=device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2)  # channels-last strides, which convolutions on GPU prefer
