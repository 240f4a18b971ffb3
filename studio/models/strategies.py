"""Ways to spend a visual-token budget N = T*M: each seed paper's representation as one strategy module.

Every strategy maps the frozen features of the raw frames it reads to exactly `n_tokens` LM inputs:

    s = build_strategy(StrategySpec("slow_fast", frames=4, tokens_per_frame=4), grid=8, dim=16, width=64)
    x = bank_features[:, s.frames_read]          # (B, len(frames_read), P, C), P = G*G patches
    tokens = s(x)                                # (B, s.n_tokens, width); s.n_tokens == 16 always

A strategy is handed to studio.models.video_lm.VideoLM as its `projector` (with identity selectors),
so the LM, the question, the loss and the evaluation are the engine's. The strategies:

- "uniform" (Opt-Visor's baseline): T frames at the centres of T equal segments, each mean-pooled to a
  sqrt(M) x sqrt(M) grid; the engine's FrameSelector + TokenSelector("mean") + Projector.
- "attention": the same frames, M learned queries attending over the P patches (TokenSelector).
- "slow_fast" (EMA / MotionBench): K slow frames at M_s pooled tokens plus motion tokens for evenly
  spaced frames in between, 1 or 2 per motion frame, filling the budget. A motion token is the
  *displacement of feature mass*: per patch, the mass is the distance of its feature from the frame's
  median patch (where the object is) and the change from the previous raw frame (what moved); the
  token is an MLP of the mass-weighted centroid (x, y), spread and log mass of both maps' MASS_TOP
  heaviest patches (10 numbers, no pixels: it stands in for a GOP's motion vectors). The second token of a motion frame, if
  asked for, is the change-weighted mean feature (what moved).
- "coarse_fine" (MaVEn): per frame, c coarse *discrete* tokens -- for each cell of a sqrt(c) x sqrt(c)
  grid of regions, the codebook word (k-means over frozen patch features, studio.models.codebook) of
  the region's most salient patch, embedded by a learned table -- plus M - c fine *continuous* tokens,
  kept by a dynamic reduction: the M - c most salient patches of the frame (salience = distance from
  the frame's median patch), each with its grid position. c = 0 is the continuous-only reduction.
- "native_resolution" (Kimi-VL): no pooling; a frame gets tokens in proportion to its content (patches
  whose salience passes the codebook's content threshold), at least one, packed so that the T frames
  together hold exactly N tokens; each token is one patch at native grid resolution with its grid
  position and its frame's time position, so the LM can tell frames and places apart.

Token counts are exact and fixed per cell (no padding): `n_tokens == frames * tokens_per_frame` for every
strategy. `check_spec` refuses an option that cannot meet the budget, naming it and what would fit.
`s.frame_tokens(B)` says where the tokens went: (B, len(frames_read)) tokens spent on each raw frame read
(native_resolution's for the last batch it saw; a slow_fast motion token counts for its motion frame, and a
frame read only as a motion frame's predecessor gets none); each row sums to n_tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from studio.models.selection import FrameSelector, TokenSelector
from studio.models.video_lm import Projector

STRATEGIES = ("uniform", "attention", "slow_fast", "coarse_fine", "native_resolution")
MOTION_DESCRIPTOR = 10  # numbers per motion frame: (x, y, spread_x, spread_y, log mass) of two mass maps
MASS_TOP = 4  # patches a mass centroid is taken over: an 8-pixel digit covers about 2x2 cells of 4 pixels


@dataclass(frozen=True)
class StrategySpec:
    """What a cell asks of its strategy. frames * tokens_per_frame is the budget N every strategy meets.

    slow_frames, slow_tokens: slow_fast's K dense frames at M_s pooled tokens (0: K = T // 2, M_s = M).
    motion_tokens: slow_fast's tokens per motion frame (1 or 2).
    coarse_tokens: coarse_fine's discrete tokens per frame c (-1: 1 when M <= 4, else 4; 0: none).
    """

    strategy: str = "uniform"
    frames: int = 4
    tokens_per_frame: int = 4
    raw_frames: int = 32
    slow_frames: int = 0
    slow_tokens: int = 0
    motion_tokens: int = 1
    coarse_tokens: int = -1

    @property
    def budget(self) -> int:
        return int(self.frames) * int(self.tokens_per_frame)

    def slow(self) -> tuple[int, int, int]:
        """slow_fast's (K slow frames, M_s tokens each, number of motion frames)."""
        K = int(self.slow_frames) or max(1, int(self.frames) // 2)
        Ms = int(self.slow_tokens) or int(self.tokens_per_frame)
        left = self.budget - K * Ms
        return K, Ms, left // int(self.motion_tokens) if left > 0 else 0

    def coarse(self) -> int:
        c = int(self.coarse_tokens)
        return (1 if int(self.tokens_per_frame) <= 4 else 4) if c < 0 else c


def _square_dividing(M: int, G: int) -> bool:
    s = math.isqrt(M)
    return M >= 1 and s * s == M and G % s == 0


def _pool_sizes(G: int) -> list[int]:
    return [s * s for s in range(1, G + 1) if G % s == 0]


def check_spec(spec: StrategySpec, grid: int) -> None:
    """Raise ValueError naming the option that cannot meet the budget and what would fit."""
    s, T, M, F, P = spec.strategy, int(spec.frames), int(spec.tokens_per_frame), int(spec.raw_frames), grid * grid
    N = spec.budget
    if s not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {s!r}")
    if not 1 <= T <= F:
        raise ValueError(f"frames must be in 1..raw_frames={F}, got {T}")
    if s == "uniform" and not _square_dividing(M, grid):
        raise ValueError(f"uniform: tokens_per_frame must be one of {_pool_sizes(grid)} (a pooled grid), got {M}")
    if s == "attention" and not 1 <= M <= P:
        raise ValueError(f"attention: tokens_per_frame must be in 1..{P}, got {M}")
    if s == "slow_fast":
        K, Ms, n_motion = spec.slow()
        m = int(spec.motion_tokens)
        if m not in (1, 2):
            raise ValueError(f"slow_fast: motion_tokens must be 1 or 2 per motion frame, got {m}")
        if not _square_dividing(Ms, grid):
            raise ValueError(f"slow_fast: slow_tokens must be one of {_pool_sizes(grid)}, got {Ms}")
        fit = [k for k in range(1, F) if 0 < N - k * Ms and (N - k * Ms) % m == 0 and k + (N - k * Ms) // m <= F]
        if K not in fit:
            raise ValueError(
                f"slow_fast: slow_frames={K} at slow_tokens={Ms} leaves {N - K * Ms} of the budget {N} = {T}x{M} "
                f"for {m} token(s) per motion frame (needs > 0, a multiple of {m}, and slow + motion frames <= "
                f"raw_frames={F}); slow_frames that fit: {fit or 'none, lower slow_tokens'}"
            )
    if s == "coarse_fine":
        c = spec.coarse()
        fits = [k for k in _pool_sizes(grid) if k < M] + [0]
        if c not in fits or M - c > P:
            raise ValueError(
                f"coarse_fine: coarse_tokens={c} per frame must be 0 or a pooled grid size below "
                f"tokens_per_frame={M} (room for a fine token); coarse_tokens that fit: {sorted(fits)}"
            )
    if s == "native_resolution" and not T <= N <= T * P:
        raise ValueError(f"native_resolution: budget {N} must give each of {T} frames 1..{P} tokens")


def uniform_centres(T: int, F: int) -> np.ndarray:
    """The raw frames uniform sampling keeps: the centre of each of T equal segments (FrameSelector's)."""
    return ((np.arange(T) + 0.5) * F / T).astype(np.int64)


def salience(x: torch.Tensor) -> torch.Tensor:
    """(..., P, C) -> (..., P): distance of each patch from the frame's median patch (background)."""
    return (x - x.median(dim=-2, keepdim=True).values).norm(dim=-1)


def _grid_xy(G: int) -> torch.Tensor:
    r = torch.arange(G * G)
    return torch.stack([(r % G).float(), (r // G).float()], 1) / max(G - 1, 1)  # (P, 2) in [0, 1]


def mass_descriptor(mass: torch.Tensor, xy: torch.Tensor, top: int = MASS_TOP) -> torch.Tensor:
    """(B, n, P) non-negative mass, (P, 2) positions -> (B, n, 5): centroid x, y, spread x, y, log mass
    of the `top` heaviest patches (the rest of the frame's mass, spread over the background, would pull
    the centroid to the middle: on the motion bank the all-patch centroid tracked the digit with
    correlation 0.70, the top-4 one with 0.99)."""
    kept = torch.zeros_like(mass).scatter(-1, mass.topk(min(top, mass.shape[-1]), -1).indices, 1.0) * mass
    total = kept.sum(-1, keepdim=True)
    w = kept / total.clamp_min(1e-6)
    c = w @ xy  # (B, n, 2)
    spread = (w @ xy**2 - c**2).clamp_min(0).sqrt()
    return torch.cat([c, spread, torch.log1p(total)], -1)


class PooledFrames(nn.Module):
    """uniform / attention: T centre frames, each reduced to M tokens by the engine's TokenSelector."""

    def __init__(self, spec: StrategySpec, grid: int, dim: int, width: int):
        super().__init__()
        T, M = int(spec.frames), int(spec.tokens_per_frame)
        self.frames_read, self.n_tokens = uniform_centres(T, int(spec.raw_frames)), T * M
        self.frame_selector = FrameSelector("uniform", T, int(spec.raw_frames))
        self.token_selector = TokenSelector("mean" if spec.strategy == "uniform" else "attention", M, grid, dim)
        self.projector = Projector(dim, width, T, M)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, P, C) -> (B, T*M, width)"""
        return self.projector(self.token_selector(self.frame_selector(x)))

    def frame_tokens(self, batch_size: int) -> torch.Tensor:
        """-> (B, T): M tokens on every frame read."""
        return torch.full((batch_size, len(self.frames_read)), self.n_tokens // len(self.frames_read))


class SlowFast(nn.Module):
    """slow_fast: K pooled slow frames + motion tokens for evenly spaced motion frames (see module doc)."""

    def __init__(self, spec: StrategySpec, grid: int, dim: int, width: int):
        super().__init__()
        F = int(spec.raw_frames)
        K, Ms, n_motion = spec.slow()
        self.K, self.Ms, self.n_motion, self.m = K, Ms, n_motion, int(spec.motion_tokens)
        slow = uniform_centres(K, F)
        # motion frames: the n_motion frames closest to even spacing that are not slow frames
        free = np.setdiff1d(np.arange(F), slow)
        pick = np.unique(np.round(np.linspace(0, len(free) - 1, n_motion)).astype(np.int64))
        motion = free[pick]
        # each motion frame's previous raw frame is read too (its change is measured against it)
        prev = np.maximum(motion - 1, 0)
        self.frames_read = np.union1d(np.union1d(slow, motion), prev)
        pos = {f: i for i, f in enumerate(self.frames_read)}
        for name, arr in (("slow_idx", slow), ("motion_idx", motion), ("prev_idx", prev)):
            self.register_buffer(name, torch.tensor([pos[f] for f in arr]), persistent=False)
        self.register_buffer("slow_t", torch.from_numpy(slow), persistent=False)
        self.register_buffer("motion_t", torch.from_numpy(motion), persistent=False)
        self.register_buffer("xy", _grid_xy(grid), persistent=False)
        self.n_tokens = K * Ms + len(motion) * self.m  # linspace steps >= 1: the motion frames are distinct
        per_frame = torch.zeros(len(self.frames_read), dtype=torch.long)
        per_frame[self.slow_idx] += Ms
        per_frame[self.motion_idx] += self.m
        self.register_buffer("per_frame", per_frame, persistent=False)
        self.pool = TokenSelector("mean", Ms, grid, dim)
        self.slow_proj = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))
        self.space = nn.Parameter(torch.randn(1, Ms, width) * 0.02)
        self.motion_proj = nn.Sequential(nn.Linear(MOTION_DESCRIPTOR, width), nn.GELU(), nn.Linear(width, width))
        self.what_proj = nn.Linear(dim, width) if self.m == 2 else None
        self.kind = nn.Parameter(torch.randn(3, width) * 0.02)  # slow / motion-where / motion-what
        self.time = nn.Embedding(F, width)
        nn.init.normal_(self.time.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, len(frames_read), P, C) -> (B, K*M_s + n_motion*m, width)"""
        B = x.shape[0]
        slow = self.pool(x[:, self.slow_idx])  # (B, K, Ms, C)
        slow = self.slow_proj(slow) + self.space + self.time(self.slow_t)[:, None] + self.kind[0]
        cur, prev = x[:, self.motion_idx], x[:, self.prev_idx]  # (B, n, P, C)
        change = (cur - prev).norm(dim=-1)  # (B, n, P)
        desc = torch.cat([mass_descriptor(salience(cur), self.xy), mass_descriptor(change, self.xy)], -1)
        t = self.time(self.motion_t)
        tokens = [slow.reshape(B, -1, slow.shape[-1]), self.motion_proj(desc) + t + self.kind[1]]
        if self.what_proj is not None:
            w = change / change.sum(-1, keepdim=True).clamp_min(1e-6)
            tokens.append(self.what_proj((w[..., None] * cur).sum(2)) + t + self.kind[2])
        return torch.cat(tokens, 1)

    def frame_tokens(self, batch_size: int) -> torch.Tensor:
        """-> (B, len(frames_read)): M_s on a slow frame, m on a motion frame, 0 on a predecessor only."""
        return self.per_frame.cpu().expand(batch_size, -1)


class CoarseFine(nn.Module):
    """coarse_fine: c discrete codebook tokens per frame + M - c salient continuous patches (module doc)."""

    def __init__(self, spec: StrategySpec, grid: int, dim: int, width: int, codebook: torch.Tensor):
        super().__init__()
        T, M, F = int(spec.frames), int(spec.tokens_per_frame), int(spec.raw_frames)
        self.c, self.k, self.G, self.T = spec.coarse(), M - spec.coarse(), grid, T
        self.frames_read, self.n_tokens = uniform_centres(T, F), T * M
        self.register_buffer("codebook", codebook.float(), persistent=False)  # (codes, C), frozen
        # c = 0 (fine_only) has no discrete tokens and so no word table: its parameter count is honest
        self.words = nn.Embedding(codebook.shape[0], width) if self.c else None
        s = math.isqrt(self.c) if self.c else 1
        r = torch.arange(grid * grid)
        region = ((r // grid) // (grid // s)) * s + (r % grid) // (grid // s)
        self.register_buffer("region", region, persistent=False)  # (P,) region of each patch
        self.region_pos = nn.Parameter(torch.randn(self.c, width) * 0.02) if self.c else None
        self.fine_proj = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))
        self.patch_pos = nn.Parameter(torch.randn(grid * grid, width) * 0.02)
        self.time = nn.Parameter(torch.zeros(T, 1, width))
        self.kind = nn.Parameter(torch.randn(2, width) * 0.02)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """(..., P, C) -> (..., P) index of the nearest codebook word of each patch."""
        return torch.cdist(x.reshape(-1, x.shape[-1]), self.codebook).argmin(-1).reshape(x.shape[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, P, C) -> (B, T*M, width)"""
        B, T, P, C = x.shape
        sal = salience(x)  # (B, T, P)
        parts = []
        if self.c:
            # per region, the patch with the largest salience; its word is the region's coarse token
            masked = sal[..., None, :].masked_fill(
                self.region[None, None, None, :] != torch.arange(self.c, device=x.device)[:, None], -1
            )
            best = masked.argmax(-1)  # (B, T, c)
            words = torch.gather(self.codes(x), 2, best)
            parts.append(self.words(words) + self.region_pos + self.kind[0])
        top = sal.topk(self.k, dim=-1).indices.sort(-1).values  # (B, T, k) kept in grid order
        fine = torch.gather(x, 2, top[..., None].expand(B, T, self.k, C))
        parts.append(self.fine_proj(fine) + self.patch_pos[top] + self.kind[1])
        return (torch.cat(parts, 2) + self.time).reshape(B, -1, parts[-1].shape[-1])

    def frame_tokens(self, batch_size: int) -> torch.Tensor:
        """-> (B, T): c coarse + M - c fine tokens on every frame read."""
        return torch.full((batch_size, self.T), self.c + self.k)


def allocate(content: torch.Tensor, budget: int, cap: int) -> torch.Tensor:
    """(B, T) content counts -> (B, T) int tokens per frame, >= 1 and <= cap, summing to `budget`:
    one each, the rest in proportion to content (largest remainders; equal shares when all are empty)."""
    B, T = content.shape
    w = content.float() + 1e-3  # empty frames keep a (tiny) share so an empty video spreads evenly
    extra = budget - T
    share = w / w.sum(1, keepdim=True) * extra
    a = share.floor().long()
    rest = extra - a.sum(1)  # (B,) tokens still to place
    rank = torch.argsort(torch.argsort(-(share - a), dim=1, stable=True), dim=1)
    a = a + (rank < rest[:, None]).long() + 1
    # caps: move any excess to the frames with room, largest content first (rare: a frame of P tokens)
    for _ in range(T):
        over = (a - cap).clamp_min(0)
        if not over.any():
            break
        a = a - over
        room = (cap - a) * (over.sum(1, keepdim=True) > 0)
        order = torch.argsort(-(room > 0).float() * w, dim=1, stable=True)
        give = torch.zeros_like(a).scatter(1, order[:, :1], over.sum(1, keepdim=True))
        a = a + give
    return a


class NativeResolution(nn.Module):
    """native_resolution: tokens per frame in proportion to its content, packed into T*M (module doc)."""

    def __init__(self, spec: StrategySpec, grid: int, dim: int, width: int, threshold: float):
        super().__init__()
        T, M, F = int(spec.frames), int(spec.tokens_per_frame), int(spec.raw_frames)
        self.T, self.P, self.n_tokens, self.threshold = T, grid * grid, T * M, float(threshold)
        self.frames_read = uniform_centres(T, F)
        self.proj = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))
        self.patch_pos = nn.Parameter(torch.randn(grid * grid, width) * 0.02)
        self.time = nn.Parameter(torch.randn(T, width) * 0.02)
        self.last_allocation: torch.Tensor | None = None  # (B, T) of the last batch, for reports

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, P, C) -> (B, T*M, width)"""
        B, T, P, C = x.shape
        sal = salience(x)
        alloc = allocate((sal > self.threshold).sum(-1), self.n_tokens, P)  # (B, T)
        self.last_allocation = alloc.detach()
        order = torch.argsort(sal, dim=-1, descending=True, stable=True)  # (B, T, P) patches by salience
        keep = torch.arange(P, device=x.device) < alloc[..., None]  # first a_t of each frame
        b, t, r = keep.nonzero(as_tuple=True)  # row-major: sample, then frame, then rank -> packed in order
        patch = order[b, t, r]
        tok = self.proj(x[b, t, patch]) + self.patch_pos[patch] + self.time[t]
        return tok.reshape(B, self.n_tokens, -1)

    def frame_tokens(self, batch_size: int) -> torch.Tensor:
        """-> (B, T): the allocation of the last batch (call right after forward on it)."""
        if self.last_allocation is None or len(self.last_allocation) != batch_size:
            raise ValueError("native_resolution: frame_tokens(B) needs a forward on a batch of B first")
        return self.last_allocation.cpu()


def build_strategy(spec: StrategySpec, grid: int, dim: int, width: int, codebook=None) -> nn.Module:
    """The strategy module of `spec` (checked first). coarse_fine needs `codebook` (a studio.models.codebook
    Codebook: its `words` (codes, C)); native_resolution its `threshold`."""
    check_spec(spec, grid)
    if spec.strategy in ("uniform", "attention"):
        return PooledFrames(spec, grid, dim, width)
    if spec.strategy == "slow_fast":
        return SlowFast(spec, grid, dim, width)
    if codebook is None:
        raise ValueError(f"{spec.strategy} needs the codebook (studio.models.codebook.codebook)")
    if spec.strategy == "coarse_fine":
        return CoarseFine(spec, grid, dim, width, torch.as_tensor(codebook.words))
    return NativeResolution(spec, grid, dim, width, codebook.threshold)
