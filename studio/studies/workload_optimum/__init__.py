"""The workload-optimum study: where the best frames/tokens split moves when the workload changes.

    runs = run_cells("default")                           # experiments/sweeps/workload_optimum.yaml
    table = results_table(runs)                           # one row per trained cell, knobs as columns
    series = {k: knob_series(table, k) for k in KNOBS}    # the cells of one knob (others at the centre)
    optima = optima_table(series, laws, [16, 32], 200)    # per knob value: fitted T*(budget) with bands, token gain
    measured = measured_table(series, [16, 32])           # per knob value: the best cell of each line, seed range
    laws, predicted = law_table(optima, {"events": [4]})  # T* = G(w) budget^a(w) without the held-out values
    gains = token_gains(series["digit_size"])             # per seed: loss saved by 16 instead of 4 tokens at equal T
    short = shortcut_seeds(series["events"])              # per seed: Event-Bench's few-frame shortcut per density
    save_verdicts([verdict_needle(seed_optima(series["needle_frames"], [16, 32]), ...),
                   verdict_size(gains, ...), verdict_events(short)], "workload_optimum")

Three knobs of studio.data.video, each moved alone around the visual-context workload (CENTRE: needle 8
of 32 frames, 8-pixel digits, the retrieval + spatial mix): `needle_frames` (w = the needle's share of
the video), `digit_size` (w = the digit's side in grid cells) and `events` (w = the most events a video
holds, with the counting question "how many times did a digit appear?" over 0..events flashes: a
question only a model that sees every event answers, so a single frame's shortcut shrinks with density). Per knob value a law L(T, M) is
fitted with studio.scaling (family chosen by `compare`), giving T* on each budget line T*M with
bootstrap bands; where no law can be fitted (too few cells) T* is the line's best cell, without a band.
A T* at the end of its line (at_boundary, or a best cell that is the line's fewest- or most-frames cell)
is a bound, not a value: the figures draw it so and the verdicts say so.

The verdicts (studio.studies.workload_optimum.verdicts, through studio.verdicts.judge) rest on per-seed
paired statistics of the measured cells: each seed's best cell on a line (seed_optima), each seed's token
gain (token_gains), each seed's shortcut (shortcut_seeds); each table carries the seed's health (its best
loss and accuracy over the workload's cells, the blind-guess loss and chance) for the gates and failed seeds.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from studio import paths
from studio.analysis import scaling
from studio.analysis.scaling.workload import WorkloadLaw, doubling_gain, fit_workload_law, held_out_check
from studio.stats import LEVEL
from studio.studies import visual_context as vc
from studio.studies.workload_optimum.verdicts import (  # noqa: F401  (the notebook's verdicts)
    CHANCE,
    EVENT_BENCH,
    LEARNED_MARGIN,
    M16_EXCESS,
    MIN_GAIN_DIFF,
    MIN_SEEDS,
    MIN_TSTAR_LOG2,
    MIN_VALUES,
    OPT_VISOR,
    SHORTCUT_MIN_DROP,
    blind_loss,
    failed_seeds,
    task_chance,
    verdict_events,
    verdict_needle,
    verdict_size,
    workload_chance,
)
from studio.tolerance import seed_range

SWEEP = "workload_optimum"  # experiments/sweeps/workload_optimum.yaml
CENTRE = {"needle_frames": 8, "digit_size": 8, "events": 0}  # the visual-context workload
HELD_OUT_FACTOR = 2.0  # a held-out prediction within this factor of the workload's own T* counts as validated


@dataclass(frozen=True)
class Knob:
    label: str  # axis label
    w_name: str  # the knob as the workload law's w
    scale: str  # how w is computed from the knob's column: "per_frame", "per_cell" or "count"


KNOBS = {
    "needle_frames": Knob("needle on screen (frames of 32)", "needle_fraction", "per_frame"),
    "digit_size": Knob("digit side (pixels; a grid cell is 4)", "object_cells", "per_cell"),
    "events": Knob("events per video (at most)", "events", "count"),
}
KEYS = ["needle_frames", "digit_size", "events", "frames", "tokens_per_frame", "seed"]


# ---------------------------------------------------------------- the sweep and its table
def run_cells(profile="default", launcher="local", workers: int | None = None, progress=True) -> pd.DataFrame:
    """The sweep's results; with the local launcher every feature bank is built first, `workers` at once."""
    from studio.sweep import load_config, run_sweep

    config = load_config(paths.SWEEP_CONFIGS / f"{SWEEP}.yaml", profile)
    if launcher == "local":
        prepare_banks(config, workers or config.workers)
    return run_sweep(config, launcher=launcher, progress=progress, workers=workers)


def _bank(cell: dict) -> None:
    """Build (or find) the frozen encoder and feature bank a cell reads, on one thread."""
    from studio.engine import CellConfig
    from studio.models.frame_encoder import feature_bank
    from studio.repro import cpu_threads

    cfg = CellConfig.from_dict(cell)
    with cpu_threads(1):
        feature_bank(cfg.encoder(), cfg.video(), cfg.train_videos, cfg.val_videos, cfg.data_seed, log=lambda *_: None)


def bank_folder(cell: dict):
    """Where studio.cache keeps the feature bank a cell reads (the key feature_bank gives it; the folder
    may not exist yet)."""
    from studio.cache import cache_key, code_fingerprint
    from studio.engine import CellConfig
    from studio.models.frame_encoder import bank_key

    cfg = CellConfig.from_dict(cell)
    key = bank_key(cfg.encoder(), cfg.video(), cfg.train_videos, cfg.val_videos, cfg.data_seed)
    return paths.CACHE / "features" / cache_key(key, code_fingerprint("studio.models.frame_encoder"))


def prepare_banks(config, workers: int = 1) -> int:
    """Build every distinct bank of the sweep that is not in the cache yet before its cells, `workers` at
    once, so that two cells never wait on the same bank's lock (a new digit size also pretrains its
    encoder). Returns how many it built: 0 on a warm rerun, which then starts no process (a cell that
    trains still loads and checks its bank through feature_bank)."""
    from studio.sweep import expand

    keys = ("digit_size", "needle_frames", "events", "tasks", "train_videos", "val_videos", "data_seed")
    banks = {json.dumps({k: r.get(k) for k in keys}, sort_keys=True): r for r in expand(config)}
    missing = [r for r in banks.values() if not bank_folder(r).is_dir()]
    # the centre's bank first (it may pretrain the shared 8-pixel encoder), then the other digit sizes
    order = sorted(missing, key=lambda r: (any(r[k] != v for k, v in CENTRE.items()), r["digit_size"] == 8))
    if workers <= 1 or len(order) <= 1:
        for r in order:
            _bank(r)
        return len(order)
    from studio.workers import spawn_pool

    with spawn_pool(workers) as pool:
        list(pool.map(_bank, order))
    return len(order)


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: the knobs, T, M, seed, budget (T*M), val_loss, val_acc, per-task accuracy, seconds."""
    tasks = vc.task_names(runs)
    out = runs[[*KEYS, "token_strategy", "frame_strategy", "val_loss", "val_acc"]].copy()
    for t in tasks:
        out[f"val_acc_{t}"] = runs[f"val_acc_{t}"]
    out["tasks"] = ["+".join(json.loads(t)) if isinstance(t, str) and t.startswith("[") else t for t in runs["tasks"]]
    out["budget"] = out["frames"] * out["tokens_per_frame"]
    out["seconds"] = runs["seconds"]
    return out.sort_values(KEYS).reset_index(drop=True)


def seed_spread(table: pd.DataFrame) -> dict[str, float]:
    """The largest range over seeds of each metric in any cell (knobs, T, M): the noise a rerun shows,
    what `studio figures --check` tolerates (with visual_context.tolerance mapping it onto a figure's columns)."""
    cols = [c for c in table.columns if c.startswith(("val_loss", "val_acc"))]
    return seed_range(table, KEYS[:-1], cols)


def knob_w(knob: str, values, frames: int = 32, cell_pixels: int = 4) -> np.ndarray:
    """The workload law's w for knob values: needle share of the video, digit side in grid cells, events."""
    v = np.asarray(values, float)
    return {"per_frame": v / frames, "per_cell": v / cell_pixels, "count": v}[KNOBS[knob].scale]


def knob_axis(ax, values, label: str) -> None:
    """A log x axis ticked at the knob's values (its limits set from them, so that a panel whose points
    are all NaN -- a workload without a law -- still draws)."""
    v = sorted({float(x) for x in values})
    ax.set(xscale="log", xlabel=label)
    if v:
        ax.set(xlim=(v[0] / 1.4, v[-1] * 1.4), xticks=v, xticklabels=[f"{x:g}" for x in v])
        ax.minorticks_off()
    ax.xaxis.label.set_fontsize(7)


def knob_series(table: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Rows where only `knob` moves (the others at CENTRE), with columns `value` (the knob) and `w`.
    The events series is events >= 1 (its own task mix); the other two include the centre workload."""
    if knob not in KNOBS:
        raise ValueError(f"unknown knob {knob!r}; knobs: {list(KNOBS)}")
    mask = np.ones(len(table), bool)
    for k, v in CENTRE.items():
        if k != knob:
            mask &= (table[k] == v).to_numpy()
    if knob == "events":
        mask &= (table["events"] >= 1).to_numpy()
    out = table[mask].copy()
    out["value"] = out[knob]
    out["w"] = knob_w(knob, out[knob])
    return out


def budget_lines(series: pd.DataFrame, min_cells: int = 3) -> pd.DataFrame:
    """visual_context.budget_lines per knob value (cells of each T*M line, the best, whether it is resolved)
    with each cell's seed range (min, max) added; column `value` is the knob value."""
    parts = []
    for v, g in series.groupby("value"):
        line = vc.budget_lines(g, min_cells=min_cells)
        if not line.empty:
            rng = vc.by_cell(vc.default_cells(g))[["frames", "tokens_per_frame", "min", "max"]]
            parts.append(line.merge(rng, on=["frames", "tokens_per_frame"]).assign(value=v))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def lines_table(series: dict, min_cells: int = 3) -> pd.DataFrame:
    """budget_lines of every knob's series in one table (column `knob` first)."""
    parts = [budget_lines(s, min_cells).assign(knob=k) for k, s in series.items()]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["knob", "value", "budget", "frames", "tokens_per_frame", "mean", "min", "max"])
    out = pd.concat(parts, ignore_index=True)
    return out[["knob", "value", *[c for c in out.columns if c not in ("knob", "value")]]]


# ---------------------------------------------------------------- per workload: the law and its optimum
def _fit(cells: pd.DataFrame, laws) -> tuple[str, scaling.Fit] | None:
    """The law `compare` chooses for one workload's cells, or None when none can be fitted."""
    x = ("frames", "tokens_per_frame")
    n_points = len(cells[list(x)].drop_duplicates())
    usable = [law for law in laws if n_points >= len(scaling.get_law(law.split("(")[0]).params)]
    if not usable:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scaling.choose(scaling.compare(cells, usable, x=x, y="val_loss", loo=len(cells) > 2))
    except ValueError:
        return None


OPTIMA_COLUMNS = ["value", "w", "budget", "frames_opt", "frames_ci_low", "frames_ci_high", "at_boundary", "law"]
OPTIMA_COLUMNS += ["token_gain", "token_gain_ci_low", "token_gain_ci_high", "learned", "bound"]


def learned(cells: pd.DataFrame, col: str = "val_acc") -> bool:
    """Whether a workload was learned: its best cell (mean over seeds of `col`) beats the workload's
    chance (workload_chance of its task mix) by LEARNED_MARGIN."""
    best = cells.groupby(["frames", "tokens_per_frame"])[col].mean().max()
    first = cells.iloc[0]
    return bool(best > workload_chance(first.get("tasks", "retrieval"), first.get("events", 0)) + LEARNED_MARGIN)


def seed_health(series: pd.DataFrame) -> pd.DataFrame:
    """Per knob value and seed: seed_loss and seed_acc, the seed's best held-out loss and accuracy over the
    workload's cells, next to the workload's blind-guess loss and chance (blind_loss, workload_chance of its
    task mix): what the verdicts' training gates and failed seeds read."""
    rows = []
    for value, g in vc.default_cells(series).groupby("value"):
        first = g.iloc[0]
        tasks, events = first.get("tasks", "retrieval"), first.get("events", 0)
        for seed, s in g.groupby("seed"):
            rows.append(
                [value, seed, s["val_loss"].min(), s["val_acc"].max(), blind_loss(tasks, events)]
                + [workload_chance(tasks, events)]
            )
    return pd.DataFrame(rows, columns=["value", "seed", "seed_loss", "seed_acc", "blind_loss", "chance"])


def seed_optima(series: pd.DataFrame, budgets, min_cells: int = 3) -> pd.DataFrame:
    """The measured optimum per knob value, budget line (of `budgets`, holding >= min_cells cells) and seed:
    the line's cell of lowest held-out loss for that seed. Columns value, w, budget, seed, frames,
    tokens_per_frame, val_loss, val_acc (of that cell), frames_min, frames_max (the line's ends), edge ("most
    frames" or "fewest frames" when the best cell is an end: there T* is a bound, "" inside), n_cells,
    learned, and the seed's health (seed_health)."""
    rows = []
    cells = vc.default_cells(series)
    health = seed_health(series)
    for value, g in cells.groupby("value"):
        ok = learned(g)
        g = g.assign(budget=g["frames"] * g["tokens_per_frame"])
        for budget in budgets:
            line = g[g["budget"] == budget]
            if line[["frames", "tokens_per_frame"]].drop_duplicates().shape[0] < min_cells:
                continue
            lo, hi = line["frames"].min(), line["frames"].max()
            for seed, s in line.groupby("seed"):
                if s["val_loss"].isna().all():
                    continue
                best = s.loc[s["val_loss"].idxmin()]
                edge = "most frames" if best.frames == hi else ("fewest frames" if best.frames == lo else "")
                rows.append(
                    [value, float(best.w), float(budget), seed, int(best.frames), int(best.tokens_per_frame)]
                    + [best.val_loss, best.val_acc, int(lo), int(hi), edge, len(s), ok]
                )
    cols = ["value", "w", "budget", "seed", "frames", "tokens_per_frame", "val_loss", "val_acc", "frames_min"]
    cols += ["frames_max", "edge", "n_cells", "learned"]
    return pd.DataFrame(rows, columns=cols).merge(health, on=["value", "seed"], how="left")


def measured_table(series: dict, budgets, min_cells: int = 3) -> pd.DataFrame:
    """Per knob, value and budget line: the measured T*, the best cell of the seed-mean line (frames_best),
    beside the range of the seeds' own best cells (frames_seed_min, frames_seed_max, seed_optima) and
    whether the seed-mean best is the line's end (edge, and bound ">=" / "<=": there T* is a bound). Columns
    knob first."""
    parts = []
    for knob, s in series.items():
        per_seed = seed_optima(s, budgets, min_cells)
        if per_seed.empty:
            continue
        cells = vc.default_cells(s).assign(budget=lambda d: d["frames"] * d["tokens_per_frame"])
        mean = cells.groupby(["value", "budget", "frames", "tokens_per_frame"], as_index=False)["val_loss"].mean()
        for (value, budget), g in per_seed.groupby(["value", "budget"]):
            line = mean[(mean["value"] == value) & (mean["budget"] == budget)]
            best = line.loc[line["val_loss"].idxmin()]
            lo, hi = g["frames_min"].iloc[0], g["frames_max"].iloc[0]
            edge = "most frames" if best.frames == hi else ("fewest frames" if best.frames == lo else "")
            parts.append(
                {"knob": knob, "value": value, "budget": budget, "frames_best": int(best.frames)}
                | {"bound": {"most frames": ">=", "fewest frames": "<="}.get(edge, "")}
                | {"frames_seed_min": int(g["frames"].min()), "frames_seed_max": int(g["frames"].max())}
                | {"edge": edge, "n_seeds": len(g), "learned": bool(g["learned"].iloc[0])}
            )
    cols = ["knob", "value", "budget", "frames_best", "bound", "frames_seed_min", "frames_seed_max", "edge", "n_seeds"]
    return pd.DataFrame(parts, columns=[*cols, "learned"])


def fit_optima(series, laws, budgets, n_bootstrap: int = 200, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """Per knob value and budget (OPTIMA_COLUMNS): T* with its band, the law (or "best cell"), at_boundary
    and bound (">=" when T* is the end of the line with most frames, "<=" the end with fewest: a bound, not
    a value; "" inside), and the law's token gain (doubling M at the grid's middle, scaling.workload.doubling_gain) with its
    interval; without a law T* is the line's best measured cell, and band and gain are NaN. `learned`:
    whether the workload was learned at all (`learned`); laws and verdicts use learned workloads only."""
    rows = []
    for value, cells in vc.default_cells(series).groupby("value"):
        chosen, w, ok = _fit(cells, laws), float(cells["w"].iloc[0]), learned(cells)
        if chosen is None:  # no law: the best measured cell of each line, no band
            for budget, line in vc.by_cell(cells).groupby("visual_tokens"):
                if float(budget) in map(float, budgets):
                    best = line.loc[line["mean"].idxmin()]
                    bound = (
                        ">="
                        if best.frames == line["frames"].max()
                        else ("<=" if best.frames == line["frames"].min() else "")
                    )
                    rows.append({"value": value, "w": w, "budget": float(budget), "frames_opt": float(best.frames)})
                    rows[-1] |= {"learned": ok, "at_boundary": bool(bound), "bound": bound}
            continue
        label, best = chosen
        boot = best.bootstrap(n_bootstrap, seed=seed)
        front = scaling.allocation_frontier(best, budgets, bootstrap=boot, level=level)
        mid = np.exp(np.log(cells[["frames", "tokens_per_frame"]].astype(float)).mean().to_numpy())
        gain = doubling_gain(best.law, best.theta, mid, boot, which=1, level=level)
        for r in front.itertuples():
            rows.append(
                dict(zip(OPTIMA_COLUMNS, [value, w, r.budget, r.frames_opt, r.frames_ci_low, r.frames_ci_high]))
                | {"at_boundary": bool(r.at_boundary), "law": label, "learned": ok}
                | {"bound": (">=" if r.frames_opt >= r.budget / 1.0001 else "<=") if r.at_boundary else ""}
                | dict(zip(["token_gain", "token_gain_ci_low", "token_gain_ci_high"], gain))
            )
    out = pd.DataFrame(rows).reindex(columns=OPTIMA_COLUMNS)
    out["law"] = out["law"].fillna("best cell")
    out["bound"] = out["bound"].fillna("")
    return out


def optima_table(series: dict, laws, budgets, n_bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """fit_optima of every knob's series in one table (column `knob` first). On one BLAS thread: the
    bootstraps' many small fits took 12.6 s against 24.5-28.3 s on two threads of a shared 2-core
    machine (load 3.3), and their rounding no longer depends on the thread count."""
    with threadpool_limits(1):
        parts = [fit_optima(s, laws, budgets, n_bootstrap, seed).assign(knob=k) for k, s in series.items() if len(s)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*OPTIMA_COLUMNS, "knob"])
    return out[["knob", *OPTIMA_COLUMNS]]


def workload_law(optima: pd.DataFrame, held_out=(), *, name: str = "w", vary_exponent: bool = False):
    """T* = G(w) budget^a(w) fitted on one knob's values not in `held_out` (w is column "w", called `name`
    in the law), and its check on those. Returns (law or None when the other values cannot pin it,
    held-out table from held_out_check)."""
    optima = optima.assign(**{name: optima["w"]})
    held = optima["value"].isin(list(held_out))
    try:
        law = fit_workload_law(optima[~held], name, vary_exponent=vary_exponent)
    except ValueError:
        return None, pd.DataFrame()
    check = held_out_check(law, optima[held], factor=HELD_OUT_FACTOR) if held.any() else pd.DataFrame()
    return law, check


def law_table(optima: pd.DataFrame, held_out: dict) -> tuple[dict, pd.DataFrame]:
    """Per knob the workload law (fitted on the learned workloads but its `held_out` values) and, for every
    optimum, the law's prediction (NaN without a law): columns of optima + held_out, predicted, log2_error,
    within_factor."""
    laws, parts = {}, []
    for knob, opt in optima.groupby("knob", sort=False):
        law, _ = workload_law(opt[opt["learned"].astype(bool)], held_out.get(knob, ()), name=KNOBS[knob].w_name)
        laws[knob] = law
        rows = opt.assign(held_out=opt["value"].isin(list(held_out.get(knob, ()))))
        rows["predicted"] = law.predict(rows["w"], rows["budget"]) if law else np.nan
        rows["log2_error"] = np.log2(rows["predicted"] / rows["frames_opt"])
        rows["within_factor"] = rows["log2_error"].abs() <= np.log2(HELD_OUT_FACTOR)
        parts.append(rows)
    return laws, (pd.concat(parts, ignore_index=True) if parts else optima.assign(predicted=[], held_out=[]))


def law_sentence(knob: str, law: WorkloadLaw | None, check: pd.DataFrame) -> str:
    if law is None:
        return f"{knob}: too few knob values or budgets outside the held-out ones to fit T* = G(w) budget^a(w)."
    text = f"{knob}: {law.formula()} (fitted on w = {', '.join(f'{v:g}' for v in law.values)})"
    if check.empty:
        return text + "; no held-out workload in this profile."
    hits = int(check["within_factor"].sum())
    edge = int(check["at_boundary"].astype(bool).sum()) if "at_boundary" in check else 0
    if edge:  # an own T* pinned at the grid's edge is a bound, not a value: agreement there is weak
        text += (
            f" ({edge} of {len(check)} held-out optima sit at the edge of the measured T: there the workload's own T* is "
            "only a bound, and agreement says no more than that the law also puts the optimum at the edge)"
        )
    return text + (
        f"; on the held-out workloads it predicted T* within a factor {HELD_OUT_FACTOR:g} at {hits} of "
        f"{len(check)} budgets: "
        + "; ".join(
            f"{law.knob}={r.w:g}, T*M={r.budget:g}: predicted {r.predicted:.2g}, own law {r.frames_opt:.2g}"
            + (" (a bound)" if str(getattr(r, "at_boundary", "")) == "True" else "")  # NaN: no law, no flag
            for r in check.itertuples()
        )
        + "."
    )


# ---------------------------------------------------------------- what more tokens per frame buy
def token_gains(series: pd.DataFrame, m_low: int = 4, m_high: int = 16) -> pd.DataFrame:
    """Per knob value and seed, the share of the loss saved by m_high instead of m_low tokens per frame at the
    same T, 1 - L(T, m_high) / L(T, m_low), averaged over the T measured with both. Columns value, seed, frames
    (the Ts used), gain, loss_low, loss_high (mean over those Ts), learned, and the seed's health (HEALTH);
    no row for a value without a pair."""
    rows = []
    health = seed_health(series)
    for value, g in vc.default_cells(series).groupby("value"):
        lo = g[g["tokens_per_frame"] == m_low].set_index(["frames", "seed"])["val_loss"]
        hi = g[g["tokens_per_frame"] == m_high].set_index(["frames", "seed"])["val_loss"]
        both = lo.index.intersection(hi.index)
        if both.empty:
            continue
        Ts = ",".join(map(str, sorted({t for t, _ in both})))
        ok = learned(g)
        low, high = lo.loc[both].groupby(level="seed").mean(), hi.loc[both].groupby(level="seed").mean()
        gain = (1 - hi.loc[both] / lo.loc[both]).groupby(level="seed").mean()
        for seed in gain.index:
            rows.append([value, seed, Ts, gain[seed], low[seed], high[seed], ok])
    cols = ["value", "seed", "frames", "gain", "loss_low", "loss_high", "learned"]
    return pd.DataFrame(rows, columns=cols).merge(health, on=["value", "seed"], how="left")


def token_pairs(series: pd.DataFrame, m_low: int = 4, m_high: int = 16) -> pd.DataFrame:
    """token_gains summarised per knob value: columns value, frames (the Ts used), mean, min, max (over
    seeds), n_seeds, learned."""
    g = token_gains(series, m_low, m_high)
    cols = ["value", "frames", "mean", "min", "max", "n_seeds", "learned"]
    if g.empty:
        return pd.DataFrame(columns=cols)
    out = g.groupby("value").agg(
        frames=("frames", "first"),
        mean=("gain", "mean"),
        min=("gain", "min"),
        max=("gain", "max"),
        n_seeds=("gain", "count"),
        learned=("learned", "first"),
    )
    return out.reset_index()[cols]


# ---------------------------------------------------------------- Event-Bench's few-frame shortcut
def shortcut_seeds(series: pd.DataFrame, task: str = "counting") -> pd.DataFrame:
    """Per knob value (events) and seed: accuracy on `task` with one frame (T = 1 cells), with the best cell
    (the highest seed mean), and the shortcut (acc_t1 - chance) / (acc_best - chance), chance =
    task_chance(task, events): the share of the best accuracy above chance that a single frame already gets
    (NaN when the best cell is not LEARNED_MARGIN above chance: no best accuracy to take a share of). The
    default task, counting ("how many times did a digit appear?", 0..events flashes), needs every event.
    Columns value, seed, chance, acc_t1, acc_best, best_frames, best_tokens_per_frame, shortcut, learned,
    and the seed's health (HEALTH: its chance is the workload's, equal to this task's for counting alone)."""
    col = f"val_acc_{task}"
    rows = []
    health = seed_health(series)
    for value, g in vc.default_cells(series).groupby("value"):
        if col not in g or g[col].isna().all() or not (g["frames"] == 1).any():
            continue
        chance = task_chance(task, int(value))
        cell = g.groupby(["frames", "tokens_per_frame"])[col].mean()
        T, M = cell.idxmax()
        best = g[(g["frames"] == T) & (g["tokens_per_frame"] == M)].groupby("seed")[col].mean()
        t1 = g[g["frames"] == 1].groupby("seed")[col].mean()
        ok = bool(best.mean() > chance + LEARNED_MARGIN)  # else no best accuracy to take a share of
        for seed in best.index.intersection(t1.index):
            share = (t1[seed] - chance) / (best[seed] - chance) if ok else np.nan
            rows.append([value, seed, chance, t1[seed], best[seed], T, M, share, ok])
    cols = ["value", "seed", "chance_task", "acc_t1", "acc_best", "best_frames", "best_tokens_per_frame"]
    out = pd.DataFrame(rows, columns=[*cols, "shortcut", "learned"]).merge(health, on=["value", "seed"], how="left")
    return out


def shortcut(series: pd.DataFrame, task: str = "counting") -> pd.DataFrame:
    """shortcut_seeds summarised per knob value: columns value, chance, acc_t1, acc_best (seed means),
    best_frames, best_tokens_per_frame, mean, min, max, n_seeds (of the shortcut over seeds), learned."""
    s = shortcut_seeds(series, task)
    cols = ["value", "chance", "acc_t1", "acc_best", "best_frames", "best_tokens_per_frame", "mean", "min", "max"]
    cols += ["n_seeds", "learned"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    out = s.groupby("value").agg(
        chance=("chance_task", "first"),
        acc_t1=("acc_t1", "mean"),
        acc_best=("acc_best", "mean"),
        best_frames=("best_frames", "first"),
        best_tokens_per_frame=("best_tokens_per_frame", "first"),
        mean=("shortcut", "mean"),
        min=("shortcut", "min"),
        max=("shortcut", "max"),
        n_seeds=("shortcut", "count"),
        learned=("learned", "first"),
    )
    return out.reset_index()[cols]
