"""Synthetic videos with planted needles (digits from scikit-learn), in the spirit of VideoNIAH.

Each sample is F frames of a `size` x `size` grey frame: a drifting background of soft blobs, optional
distractor squares, and needles -- real 8x8 digit scans, scaled to `digit_size` pixels -- whose
placement in time and space answers one question. Annotations come from the needles alone.

Tasks (question -> answer word):
- retrieval: one digit shown for `needle_frames` consecutive frames -> which digit (too few frames miss it);
- spatial:   two different digits side by side for `needle_frames` frames -> the left one (needs tokens);
- ordering:  two different digits at two disjoint times -> the one that came first (with `events` = n:
             n different digits one after another, each for frames // (2n) frames -> the first);
- counting:  one digit flashed k times (k in 1..max_count), each for needle_frames // 2 frames -> k
             (with `events` = n: k in 0..n flashes, each for frames // (2n) frames, at random times at least
             one empty frame apart -> k: a question only a model that sees every event can answer);
- motion:    a digit on screen all along, moving linear / curved / circular / bounce -> the motion word.

Every sample is a pure function of (seed, split, index): `sample_specs` draws the small per-sample
description with its own numpy Generator, and `render` paints any subset of frames for a whole batch
with vectorised numpy (no loop over frames or pixels), so a model that sees T of F frames only pays for
T. `render(..., labels=True)` also returns, per frame, which digit (or none) covers each cell of a
`label_grid` x `label_grid` grid: the target the frame encoder is pretrained on.

Workload knobs (studio.studies.workload_optimum moves each one alone): `needle_frames` (how long a
needle stays on screen, 1..frames: from 1/F of the video to all of it), `digit_size` (the object's side
in pixels, 1..size // 2 so that two digits fit side by side; size // label_grid pixels is one grid cell)
and `events` (Event-Bench's event density: 0 keeps each task's own layout; n >= 1 turns the ordering
question into n events, whose first a model finds only if it sees the start, and the counting question
into 0..n events, which it counts right only if it sees all of them). A value the generator
cannot draw raises studio.errors.ParameterError naming the knob and its valid range. With every knob
at its default the videos are the ones this module always made (tests pin their bytes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from studio.config import from_dict
from studio.data.digits import DIGIT_WORDS, split_digits
from studio.errors import ParameterError

TASKS = ("retrieval", "spatial", "ordering", "counting", "motion")
MOTIONS = ("linear", "curved", "circular", "bounce")
COUNT_WORDS = DIGIT_WORDS  # "how many times" answers reuse the number words
QUESTIONS = {
    "retrieval": "which digit appeared ?",
    "spatial": "which digit is on the left ?",
    "ordering": "which digit came first ?",
    "counting": "how many times did a digit appear ?",
    "motion": "how did the digit move ?",
}
NONE_LABEL = 10  # label of a grid cell that no digit covers
_SPLITS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class VideoConfig:
    """Knobs of the generator. Unknown keys are refused by `from_dict`."""

    frames: int = 32  # F raw frames per video
    size: int = 32  # frame side in pixels
    digit_size: int = 8  # needle side in pixels (the 8x8 scans are resized to it)
    needle_frames: int = 8  # how long a needle stays on screen (counting flashes last half of it)
    distractors: int = 2  # bright squares flashed at random places and times (not digits)
    blobs: int = 3  # drifting soft background blobs
    background: float = 0.35  # peak brightness of the background blobs
    noise: float = 0.05  # std of per-pixel Gaussian noise
    max_count: int = 3  # counting answers are 1..max_count
    tasks: tuple[str, ...] = ("retrieval", "spatial")
    task_weights: tuple[float, ...] | None = None  # None: equal mix
    label_grid: int = 8  # pretraining labels: which digit covers each cell of this grid
    events: int = 0  # event density: 0 = each task's own layout; n >= 1 = ordering shows n events, counting 0..n

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.task_weights is not None:
            object.__setattr__(self, "task_weights", tuple(float(w) for w in self.task_weights))
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ValueError(f"unknown tasks {bad}; valid: {list(TASKS)}")
        if self.task_weights is not None and (len(self.task_weights) != len(self.tasks) or min(self.task_weights) < 0):
            raise ValueError("task_weights needs one non-negative weight per task")
        _in_range("needle_frames", self.needle_frames, 1, self.frames, "frames a needle stays on screen")
        _in_range("digit_size", self.digit_size, 1, self.size // 2, "pixels; two digits must fit side by side")
        _in_range("events", self.events, 0, min(10, self.frames // 2), "0: off; distinct digits, >= 1 frame each")
        if self.events and not {"ordering", "counting"} & set(self.tasks):
            raise ParameterError(
                f"events={self.events} changes the ordering and counting tasks, neither of which is in tasks {self.tasks}"
            )
        if self.size % self.label_grid:
            raise ValueError("label_grid must divide size")
        slots = self.frames // max(1, self.needle_frames // 2)
        if "counting" in self.tasks and not self.events and (slots + 1) // 2 < self.max_count:
            raise ValueError(f"counting: {self.max_count} separated flashes do not fit in {self.frames} frames")
        if "ordering" in self.tasks and not self.events and 2 * self.needle_frames > self.frames:
            raise ValueError("ordering: two needles must fit one after the other")

    @property
    def event_frames(self) -> int:
        """Frames each ordering or counting event stays on screen: with `events` = n, n events fill half
        the video whatever n is, so density changes how many events there are, not how much is on screen
        (n events of this length, one empty frame apart, always fit: n <= frames // 2)."""
        return self.frames // (2 * self.events) if self.events else self.needle_frames

    @classmethod
    def from_dict(cls, d: dict) -> VideoConfig:
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["task_weights"] = None if self.task_weights is None else list(self.task_weights)
        return d


def _in_range(knob: str, value, lo: int, hi: int, meaning: str) -> None:
    """Refuse a knob value the generator cannot draw, naming the knob and its valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ParameterError(f"{knob} must be an integer in {lo}..{hi} ({meaning}), got {value!r}")


@lru_cache(maxsize=8)
def _digit_pool(split: str, digit_size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Images of one split resized to digit_size (nearest), and per class the indices of its images."""
    images, labels = split_digits(test_fraction=0.3, seed=0)[split]
    src = np.arange(digit_size) * 8 // digit_size
    resized = images[:, src][:, :, src].astype(np.float32)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    return resized, by_class


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLITS[split], int(index)])


def sample_specs(cfg: VideoConfig, indices, *, seed: int = 0, split: str = "train") -> dict:
    """Describe samples `indices` (no pixels): needles as sprites with per-frame positions.

    Returns a dict of numpy arrays, S = sprites per sample (padded; unused sprites never visible):
      task (B,) int, answer (B,) int (class id within the task's answer words: digit, count, motion),
      sprite_img (B, S) int image index, sprite_digit (B, S) int, sprite_xy (B, S, F, 2) float pixel
      top-left corners, sprite_on (B, S, F) bool, distractor_xy (B, D, 2) int, distractor_t (B, D) int,
      blob_p0 (B, K, 2), blob_v (B, K, 2), blob_sigma (B, K), blob_amp (B, K).
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
    pool, by_class = _digit_pool(split, cfg.digit_size)
    F, W, ds, d = cfg.frames, cfg.size, cfg.digit_size, cfg.needle_frames
    S = 4 if "counting" in cfg.tasks else 2
    S = max(S, cfg.max_count if "counting" in cfg.tasks else 0, cfg.events)
    weights = np.ones(len(cfg.tasks)) if cfg.task_weights is None else np.asarray(cfg.task_weights)
    weights = weights / weights.sum()
    task_ids = np.array([TASKS.index(t) for t in cfg.tasks])
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    B, D, K = len(indices), cfg.distractors, cfg.blobs
    out = {
        "task": np.zeros(B, np.int64),
        "answer": np.zeros(B, np.int64),
        "sprite_img": np.zeros((B, S), np.int64),
        "sprite_digit": np.full((B, S), -1, np.int64),
        "sprite_xy": np.zeros((B, S, F, 2), np.float32),
        "sprite_on": np.zeros((B, S, F), bool),
        "distractor_xy": np.zeros((B, D, 2), np.int64),
        "distractor_t": np.zeros((B, D), np.int64),
        "blob_p0": np.zeros((B, K, 2), np.float32),
        "blob_v": np.zeros((B, K, 2), np.float32),
        "blob_sigma": np.zeros((B, K), np.float32),
        "blob_amp": np.zeros((B, K), np.float32),
    }
    t = np.arange(F, dtype=np.float32)
    hi = W - ds  # largest top-left coordinate that keeps a digit inside the frame
    for b, idx in enumerate(indices):
        r = _rng(seed, split, idx)
        task = TASKS[task_ids[r.choice(len(task_ids), p=weights)]]
        out["task"][b] = TASKS.index(task)

        def digit(c):
            return int(by_class[c][r.integers(len(by_class[c]))])

        def put(s, c, start, stop, xy):
            out["sprite_digit"][b, s] = c
            out["sprite_img"][b, s] = digit(c)
            out["sprite_on"][b, s, start:stop] = True
            out["sprite_xy"][b, s] = xy

        if task == "retrieval":
            c = int(r.integers(10))
            start = int(r.integers(F - d + 1))
            put(0, c, start, start + d, r.integers(0, hi + 1, size=2))
            out["answer"][b] = c
        elif task == "spatial":
            a, c = r.choice(10, size=2, replace=False)
            start = int(r.integers(F - d + 1))
            y = r.integers(0, hi + 1)
            dy = r.integers(-ds // 2, ds // 2 + 1, size=2)  # roughly level, so "left" is unambiguous
            ys = np.clip(y + dy, 0, hi)
            put(0, int(a), start, start + d, (r.integers(0, W // 2 - ds + 1), ys[0]))
            put(1, int(c), start, start + d, (r.integers(W // 2, hi + 1), ys[1]))
            out["answer"][b] = a
        elif task == "ordering":
            # n different digits, each on screen for `dur` frames, one after another: each start is drawn
            # between the previous end and the latest start that leaves room for the rest. With events
            # off (n = 2, dur = needle_frames) these are the draws the two-needle layout always made.
            n, dur = (cfg.events, cfg.event_frames) if cfg.events else (2, d)
            digits = r.choice(10, size=n, replace=False)
            starts, lo = [], 0
            for i in range(n):
                starts.append(int(r.integers(lo, F - (n - i) * dur + 1)))
                lo = starts[-1] + dur
            for i in range(n):
                put(i, int(digits[i]), starts[i], starts[i] + dur, r.integers(0, hi + 1, size=2))
            out["answer"][b] = digits[0]
        elif task == "counting" and cfg.events:
            # k in 0..n flashes of one digit (0: "zero", so that even one event is a question), each `dur` frames long, one empty frame apart at least, every
            # placement equally likely: start_i = y_i + i (dur + 1) with y nondecreasing in 0..slack (stars
            # and bars), so the flashes are not aligned with any frame sampler's stride.
            n, dur = cfg.events, cfg.event_frames
            k = int(r.integers(0, n + 1))
            c = int(r.integers(10))
            slack = F - k * dur - max(k - 1, 0)
            y = np.sort(r.choice(slack + k, size=k, replace=False)) - np.arange(k) if k else []
            for s in range(k):
                start = int(y[s]) + s * (dur + 1)
                put(s, c, start, start + dur, r.integers(0, hi + 1, size=2))
            out["answer"][b] = k
        elif task == "counting":
            dur = max(1, d // 2)
            k = int(r.integers(1, cfg.max_count + 1))
            c = int(r.integers(10))
            free = np.arange(0, F // dur, 2)  # every other slot: flashes never touch, so they count apart
            for s, slot in enumerate(np.sort(r.choice(free, size=k, replace=False))):
                put(s, c, slot * dur, slot * dur + dur, r.integers(0, hi + 1, size=2))
            out["answer"][b] = k
        else:  # motion: one digit visible in every frame, its path sets the answer
            m = int(r.integers(len(MOTIONS)))
            c = int(r.integers(10))
            u = t / max(F - 1, 1)
            if MOTIONS[m] == "circular":
                centre, rad = hi / 2, hi / 2 * r.uniform(0.6, 1.0)
                ph, turn = r.uniform(0, 2 * np.pi), r.choice([-1, 1]) * r.uniform(1.0, 1.5) * 2 * np.pi
                xy = np.stack([centre + rad * np.cos(ph + turn * u), centre + rad * np.sin(ph + turn * u)], 1)
            else:
                p0 = r.uniform(0, hi, size=2)
                if MOTIONS[m] == "bounce":  # towards a wall, reflected once
                    vel = r.uniform(1.6, 2.4) * hi * np.array([r.choice([-1, 1]), r.uniform(-0.3, 0.3)])
                else:
                    ang = r.uniform(0, 2 * np.pi)
                    vel = r.uniform(0.5, 0.9) * hi * np.array([np.cos(ang), np.sin(ang)])
                raw = p0 + u[:, None] * vel
                if MOTIONS[m] == "curved":  # parabola: constant acceleration across the path
                    normal = np.array([-vel[1], vel[0]]) / (np.linalg.norm(vel) + 1e-9)
                    raw = raw + normal * r.choice([-1, 1]) * r.uniform(0.5, 0.8) * hi * 4 * u[:, None] * (
                        1 - u[:, None]
                    )
                if MOTIONS[m] == "bounce":
                    period = 2 * hi
                    raw = np.mod(raw, period)
                    raw = np.where(raw > hi, period - raw, raw)  # reflect off the walls
                xy = raw
            put(0, c, 0, F, np.clip(xy, 0, hi))
            out["answer"][b] = m
        out["distractor_xy"][b] = r.integers(0, W - 3, size=(D, 2))
        out["distractor_t"][b] = r.integers(0, F, size=D)
        out["blob_p0"][b] = r.uniform(0, W, size=(K, 2))
        out["blob_v"][b] = r.uniform(-0.5, 0.5, size=(K, 2))
        out["blob_sigma"][b] = r.uniform(3, 8, size=K)
        out["blob_amp"][b] = r.uniform(0.3, 1.0, size=K) * cfg.background
    out["noise_seed"] = np.array([[int(seed), _SPLITS[split], int(i)] for i in indices], np.int64).reshape(B, 3)
    return out


def render(cfg: VideoConfig, specs: dict, frames=None, *, labels: bool = False):
    """Paint frames `frames` (indices into F; default all) of every sample in `specs`.

    Returns video (B, T, size, size) float32 in [0, 1], and with labels=True also
    cell_labels (B, T, G, G) int64: the digit whose box covers each cell centre, NONE_LABEL if none.
    """
    F, W, ds, G = cfg.frames, cfg.size, cfg.digit_size, cfg.label_grid
    fr = np.arange(F) if frames is None else np.asarray(frames, dtype=np.int64).reshape(-1)
    B, T = specs["task"].shape[0], len(fr)
    tt = fr.astype(np.float32)
    # Background: sum of Gaussian blobs drifting with constant velocity (wrapping around the frame).
    pos = np.mod(specs["blob_p0"][:, :, None] + specs["blob_v"][:, :, None] * tt[None, None, :, None], W)  # (B,K,T,2)
    grid = np.arange(W, dtype=np.float32)
    gx = np.exp(-0.5 * ((grid[None, None, None] - pos[..., 0:1]) / specs["blob_sigma"][:, :, None, None]) ** 2)
    gy = np.exp(-0.5 * ((grid[None, None, None] - pos[..., 1:2]) / specs["blob_sigma"][:, :, None, None]) ** 2)
    video = np.einsum("bk,bkty,bktx->btyx", specs["blob_amp"], gy, gx).astype(np.float32)
    # Noise: one generator per (sample, frame), so a subset of frames matches the full video exactly.
    noise = (
        np.stack(
            [
                np.stack([np.random.default_rng([*s, int(f), 1]).standard_normal((W, W), dtype=np.float32) for f in fr])
                for s in specs["noise_seed"]
            ]
        )
        if cfg.noise > 0
        else 0.0
    )
    video = video + cfg.noise * noise
    # Distractors: 3x3 bright squares, each on one frame.
    if specs["distractor_t"].size:
        hit = specs["distractor_t"][:, :, None] == fr[None, None, :]  # (B, D, T)
        b_i, d_i, t_i = np.nonzero(hit)
        if len(b_i):
            off = np.arange(3)
            xy = specs["distractor_xy"][b_i, d_i]
            yy = (xy[:, 1, None, None] + off[None, :, None]).repeat(3, 2)
            xx = (xy[:, 0, None, None] + off[None, None, :]).repeat(3, 1)
            video[b_i[:, None, None], t_i[:, None, None], yy, xx] = 0.9
    # Needles: paste every visible (sample, sprite, frame) at once with np.maximum.at.
    on = specs["sprite_on"][:, :, fr]  # (B, S, T)
    b_i, s_i, t_i = np.nonzero(on)
    cell = np.full((B, T, G, G), NONE_LABEL, np.int64) if labels else None
    if len(b_i):
        pool, _ = _digit_pool(_split_of(specs), ds)
        xy = np.rint(specs["sprite_xy"][b_i, s_i, fr[t_i]]).astype(np.int64)  # (N, 2)
        off = np.arange(ds)
        yy = xy[:, 1, None, None] + off[None, :, None]
        xx = xy[:, 0, None, None] + off[None, None, :]
        img = pool[specs["sprite_img"][b_i, s_i]]  # (N, ds, ds)
        np.maximum.at(video, (b_i[:, None, None], t_i[:, None, None], yy, xx), img)
        if labels:
            centres = (np.arange(G) + 0.5) * (W / G)
            cover_y = (centres[None] >= xy[:, 1, None]) & (centres[None] < xy[:, 1, None] + ds)  # (N, G)
            cover_x = (centres[None] >= xy[:, 0, None]) & (centres[None] < xy[:, 0, None] + ds)
            n_i, gy_i, gx_i = np.nonzero(cover_y[:, :, None] & cover_x[:, None, :])
            cell[b_i[n_i], t_i[n_i], gy_i, gx_i] = specs["sprite_digit"][b_i[n_i], s_i[n_i]]
    video = np.clip(video, 0.0, 1.0)
    return (video, cell) if labels else video


def _split_of(specs: dict) -> str:
    code = int(specs["noise_seed"][0, 1]) if len(specs["noise_seed"]) else 0
    return {v: k for k, v in _SPLITS.items()}[code]


def make_batch(
    cfg: VideoConfig, indices, *, seed: int = 0, split: str = "train", frames=None, labels: bool = False
) -> dict:
    """specs + rendered pixels of samples `indices`: video (B, T, H, W), task (B,), answer (B,) ..."""
    specs = sample_specs(cfg, indices, seed=seed, split=split)
    out = render(cfg, specs, frames, labels=labels)
    batch = {"task": specs["task"], "answer": specs["answer"]}
    if labels:
        batch["video"], batch["cell_labels"] = out
    else:
        batch["video"] = out
    return batch


def answer_word(task: int | str, answer: int) -> str:
    """The answer word of a (task, class id) pair: digit / count words, or a motion name."""
    name = TASKS[task] if isinstance(task, (int, np.integer)) else task
    if name == "motion":
        return MOTIONS[answer]
    return DIGIT_WORDS[answer]


def question(task: int | str) -> str:
    return QUESTIONS[TASKS[task] if isinstance(task, (int, np.integer)) else task]
