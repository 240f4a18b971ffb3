"""Training losses shared by the models: HACL's hallucination-augmented contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hacl_loss(v: torch.Tensor, t: torch.Tensor, h: torch.Tensor | None, temperature) -> torch.Tensor:
    """Symmetric InfoNCE of HACL (Jiang et al., CVPR 2024), averaged over both directions.

    v (B, E) visual, t (B, E) matching captions, h (B', E) hallucinated captions or None, E the
    embedding width (D/4 in the captioner's heads); all L2-normalised. Image-to-text: row i scores
    t_i against every caption of the batch and every hallucinated caption (extra negatives).
    Text-to-image: caption i against every image. Returns a scalar tensor.
    """
    targets = torch.arange(v.shape[0], device=v.device)
    candidates = t if h is None else torch.cat([t, h], dim=0)
    i2t = v @ candidates.T / temperature
    t2i = t @ v.T / temperature
    return 0.5 * (F.cross_entropy(i2t, targets) + F.cross_entropy(t2i, targets))
