"""Images and videos as the adapters take them (numpy HxW or HxWxC, TxHxW or TxHxWxC, in [0, 1]) as tensors,
PIL images or frame stacks."""

from __future__ import annotations

import numpy as np
import torch


def _to_chw(image, size: tuple[int, int] | None) -> torch.Tensor:
    """HxW or HxWxC array in [0, 1] -> (3, h, w) float tensor, resized (bilinear) to `size`."""
    a = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"an image must be HxW or HxWxC, got shape {tuple(a.shape)}")
    a = a.permute(2, 0, 1)
    if a.shape[0] == 1:
        a = a.expand(3, -1, -1)
    elif a.shape[0] == 4:
        a = a[:3]
    if size is not None and tuple(a.shape[1:]) != tuple(size):
        a = torch.nn.functional.interpolate(a[None], size=size, mode="bilinear", align_corners=False)[0]
    return a.contiguous()


def _to_thwc(video) -> np.ndarray:
    """(T, H, W) or (T, H, W, C) array in [0, 1] -> (T, H, W, 3) float32."""
    a = np.asarray(video, dtype=np.float32)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"a video must be TxHxW or TxHxWxC, got shape {a.shape}")
    return np.repeat(a, 3, axis=3) if a.shape[3] == 1 else a[..., :3]


def _to_pil(image):
    from PIL import Image

    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return Image.fromarray((np.clip(a[..., :3], 0, 1) * 255).round().astype(np.uint8))


def _keep_blank_images(pixel_values: torch.Tensor, counts: list[int]) -> None:
    """Idefics3 and SmolVLM drop every image whose normalised pixels are all 0 as batch padding, so a
    uniform mid-grey image (a "blanked" demonstration) would vanish and break the token count: nudge one
    pixel of such real images by 1e-6. pixel_values: (batch, max images, 3, H, W), in place."""
    for i, k in enumerate(counts):
        for j in range(k):
            if not torch.any(pixel_values[i, j]):
                pixel_values[i, j, 0, 0, 0] = 1e-6
