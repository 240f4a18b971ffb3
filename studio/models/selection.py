"""How many visual tokens the LM sees: frames F -> T, and grid patches G*G -> M per frame.

Frame selection (chosen by name; input (B, F, P, C) -> (B, T, P, C)):
- "uniform":   the centre frame of each of T equal segments (Opt-Visor's sampling);
- "mean":      the mean of each of T equal groups of frames (Opt-Visor's temporal pooling);
- "keyframes": the T frames whose features changed most from the previous frame (frame 0 always
               counts as changed), kept in time order.
Token selection (input (B, T, P, C) with P = G*G in row-major grid order -> (B, T, M, C)):
- "mean":      mean pooling to a sqrt(M) x sqrt(M) grid (Opt-Visor's choice);
- "sample":    M patches on a regular sub-lattice (the centre patch of each pooled cell): same count,
               no averaging -- what "uniform sampling of M patches" keeps and loses;
- "attention": M learned queries attending over the P patches (with learned positions) -- learned
               pooling, the only strategy with parameters.
For "uniform", the pipeline may hand over only the T sampled frames (the engine reads just those from
its feature bank); the selector then passes them through. Selecting frames first and tokens second is the same as the other order for every pair above except
keyframes, which are chosen from the full-grid features, as a real system would choose them from pixels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FRAME_STRATEGIES = ("uniform", "mean", "keyframes")
TOKEN_STRATEGIES = ("mean", "sample", "attention")


def _side(M: int, G: int) -> int:
    s = math.isqrt(M)
    if s * s != M or G % s:
        raise ValueError(f"tokens_per_frame={M} must be a square whose side divides the grid side {G}")
    return s


class FrameSelector(nn.Module):
    def __init__(self, strategy: str, T: int, F: int):
        super().__init__()
        if strategy not in FRAME_STRATEGIES:
            raise ValueError(f"unknown frame strategy {strategy!r}; valid: {list(FRAME_STRATEGIES)}")
        if not 1 <= T <= F:
            raise ValueError(f"frames T={T} must be in 1..{F}")
        if strategy == "mean" and F % T:
            raise ValueError(f"temporal mean pooling needs T={T} to divide F={F}")
        self.strategy, self.T, self.F = strategy, T, F
        self.register_buffer("centres", ((torch.arange(T) + 0.5) * F / T).long(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, P, C) -> (B, T, P, C)"""
        B, F, P, C = x.shape
        if self.strategy == "uniform":
            # Input of exactly T frames: the data pipeline already read only the sampled frames.
            return x if F == self.T else x[:, self.centres]
        if self.strategy == "mean":
            return x.reshape(B, self.T, F // self.T, P, C).mean(2)
        change = (x[:, 1:] - x[:, :-1]).abs().mean(dim=(2, 3))  # (B, F-1)
        change = torch.cat([torch.full_like(change[:, :1], float("inf")), change], 1)
        # Stable sort: ties go to the earlier frame, so the choice is deterministic.
        idx = torch.sort(torch.argsort(-change, dim=1, stable=True)[:, : self.T], dim=1).values
        return torch.gather(x, 1, idx[:, :, None, None].expand(B, self.T, P, C))


class TokenSelector(nn.Module):
    def __init__(self, strategy: str, M: int, G: int, dim: int, heads: int = 2):
        super().__init__()
        if strategy not in TOKEN_STRATEGIES:
            raise ValueError(f"unknown token strategy {strategy!r}; valid: {list(TOKEN_STRATEGIES)}")
        self.strategy, self.M, self.G = strategy, M, G
        if strategy in ("mean", "sample"):
            s = _side(M, G)
            k = G // s
            rows = torch.arange(s) * k + k // 2
            self.register_buffer("picks", (rows[:, None] * G + rows[None, :]).reshape(-1), persistent=False)
            self.side = s
        else:
            if not 1 <= M <= G * G:
                raise ValueError(f"tokens_per_frame={M} must be in 1..{G * G}")
            self.queries = nn.Parameter(torch.randn(M, dim) * dim**-0.5)
            self.pos = nn.Parameter(torch.randn(G * G, dim) * 0.02)
            self.attn = nn.MultiheadAttention(dim, heads if dim % heads == 0 else 1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, P, C) -> (B, T, M, C)"""
        B, T, P, C = x.shape
        if self.strategy == "mean":
            s, k = self.side, self.G // self.side
            return x.reshape(B, T, s, k, s, k, C).mean(dim=(3, 5)).reshape(B, T, s * s, C)
        if self.strategy == "sample":
            return x[:, :, self.picks]
        flat = x.reshape(B * T, P, C)
        q = self.queries.unsqueeze(0).expand(B * T, -1, -1)
        out, _ = self.attn(q, flat + self.pos, flat, need_weights=False)
        return out.reshape(B, T, self.M, C)
