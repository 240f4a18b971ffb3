# %% [markdown]
# # Where the optimum moves: the best frames/tokens split as a function of the workload
#
# Opt-Visor derives one optimal number of frames T* for a visual budget T*M, and the visual-context
# notebook reproduces an interior optimum for one synthetic workload. But the optimum belongs to the
# workload as much as to the model: a needle on screen for 4 of 32 frames needs more frames than one on
# screen for 16, a small digit needs more tokens per frame than a large one, and Event-Bench argues that
# event-dense videos defeat the few-frame shortcut. This notebook moves one knob of the synthetic video
# generator at a time (needle duration, digit size, event density), trains the tiny video-LM on two budget
# lines for each value (sweep `experiments/sweeps/workload_optimum.yaml`), fits a law L(T, M) per workload,
# follows T* across the knob, fits one law T* = G(w) budget^a(w) across workloads and checks it on knob
# values it never saw, and says which claims the small-scale runs support.

# %% tags=["parameters"]
seed: int = 0  # seeds the notebook and the bootstraps; each cell's seeds come from the sweep config
sweep_profile: str = "default"  # profile of experiments/sweeps/workload_optimum.yaml to run or load
launcher: str = "local"  # "local" (this machine) or "submitit"
workers: int | None = None  # local launcher: banks and cells built at once (None: the sweep profile's)
laws: list[str] = ["additive", "multiplicative", "kaplan"]  # families compared per workload (studio.scaling)
budgets: list[int] = [16, 32]  # the budget lines T*M of the sweep, where T* is read
held_out: dict = {"needle_frames": [8], "events": [4]}  # knob values kept out of the workload law, then predicted
n_bootstrap: int = 200  # bootstrap resamples per workload law (bands of T* and of the token gain)
min_line_cells: int = 3  # a budget line is drawn when it holds at least this many cells

# %%
import numpy as np
from matplotlib.lines import Line2D

import studio
from studio.figures import figure, save_figure, save_table
from studio.studies import visual_context as vc
from studio.studies import workload_optimum as wo
from studio.verdicts import save_verdicts

studio.seed_everything(seed)
runs = wo.run_cells(sweep_profile, launcher=launcher, workers=workers)
table = wo.results_table(runs)
spread = wo.seed_spread(table)  # the noise each metric shows between seeds: what --check tolerates
save_table(
    table,
    "workload_optimum_results",
    tolerance=vc.tolerance(table, spread),
    caption="One row per trained cell: workload knobs, frames, tokens per frame, seed, held-out loss and accuracy.",
)
series = {knob: wo.knob_series(table, knob) for knob in wo.KNOBS}
print(vc.describe_runs(runs, table))
table.groupby(["needle_frames", "digit_size", "events"]).size().rename("cells").to_frame()

# %% [markdown]
# ## Budget lines for every knob value
# One row of panels per knob, one panel per budget T*M: held-out loss against T (M = budget / T), mean and
# seed range, one colour per knob value; circled, the best cell on the line. The visual-context workload
# (needle 8 of 32 frames, 8-pixel digits) is a value of the first two rows.

# %%
lines = wo.lines_table(series, min_line_cells)
fig, axes = figure(len(budgets), len(wo.KNOBS), aspect=0.8, squeeze=False)
for row, knob in zip(axes, wo.KNOBS):
    for ax, budget in zip(row, budgets):
        part = lines[(lines["knob"] == knob) & (lines["budget"] == budget)]
        for k, (value, g) in enumerate(part.groupby("value")):
            err = [g["mean"] - g["min"], g["max"] - g["mean"]]
            ax.errorbar(g["frames"], g["mean"], yerr=err, marker="o", ms=3, color=f"C{k}", capsize=2, label=f"{value}")
            best = g[g["best"]]
            ax.scatter(best["frames"], best["mean"], s=60, facecolor="none", edgecolor=f"C{k}", lw=1.2)
        ax.set(xscale="log", title=f"{knob}, T*M = {budget}", xlabel="frames T", ylabel="held-out loss")
        ax.set_xticks([1, 2, 4, 8, 16, 32], labels=[1, 2, 4, 8, 16, 32])
        ax.minorticks_off()
        ax.title.set_fontsize(7)
        if len(part):
            ax.legend(fontsize=7, title=knob, title_fontsize=7)
save_figure(
    fig,
    "workload_optimum_lines",
    lines if not lines.empty else table,
    tolerance=vc.tolerance(lines if not lines.empty else table, spread),
    caption="Held-out loss along each budget line for every value of each workload knob (circled: the line's best split).",
)

# %% [markdown]
# ## T* against each knob
# Per workload the law family `studio.scaling.compare` prefers is fitted to its cells (seeds as separate
# points) and T* is the split it predicts best on each budget line, with a bootstrap band (circles, line);
# beside it (squares, shifted right) the measured T*: the line's best cell of the seed means, with the range of
# each seed's own best cell. Where a workload has too few cells for any law, T* is its best cell. A T* at the
# end of its line (M = 1 or T = 1 for the law, the line's last cell for the measured one) is a bound, not a
# value: drawn open with an arrow pointing where the optimum may lie. A workload no cell learned (best
# accuracy within `LEARNED_MARGIN` of chance) has no optimum and is not drawn (column `learned`).

# %%
optima = wo.optima_table(series, laws, budgets, n_bootstrap, seed)
measured = wo.measured_table(series, budgets, min_line_cells)
fig, axes = figure(len(wo.KNOBS), aspect=1.0, squeeze=False)
for ax, knob in zip(axes[0], wo.KNOBS):
    for k, budget in enumerate(budgets):
        o = optima[(optima["knob"] == knob) & (optima["budget"] == budget) & optima["learned"]].sort_values("value")
        inside = o["bound"] == ""
        ax.plot(o["value"], o["frames_opt"], color=f"C{k}", lw=1)
        ax.fill_between(o["value"], o["frames_ci_low"], o["frames_ci_high"], color=f"C{k}", alpha=0.2, lw=0)
        ax.scatter(o.loc[inside, "value"], o.loc[inside, "frames_opt"], marker="o", s=18, color=f"C{k}", zorder=3)
        edge = o[~inside]  # a fitted T* at the end of its line: a bound, drawn open
        ax.scatter(edge["value"], edge["frames_opt"], marker="o", s=22, facecolor="none", edgecolor=f"C{k}", zorder=4)
        m = measured[(measured["knob"] == knob) & (measured["budget"] == budget) & measured["learned"]]
        m = m.assign(x=m["value"] * 1.12)  # beside the fitted T*, not on it
        err = [m["frames_best"] - m["frames_seed_min"], m["frames_seed_max"] - m["frames_best"]]
        ax.errorbar(m["x"], m["frames_best"], yerr=err, fmt="none", ecolor=f"C{k}", lw=0.8, capsize=1.5)
        ax.scatter(m["x"], m["frames_best"], marker="s", s=16, facecolor="white", edgecolor=f"C{k}", zorder=3)
        for x, y, bound in [*zip(o["value"], o["frames_opt"], o["bound"]), *zip(m["x"], m["frames_best"], m["bound"])]:
            if bound:  # a bound: an arrow towards where the optimum may lie
                ax.annotate(
                    "",
                    (x, y * (1.7 if bound == ">=" else 1 / 1.7)),
                    (x, y),
                    arrowprops={"arrowstyle": "->", "color": f"C{k}", "lw": 1},
                )
    ax.set(yscale="log", ylabel="T* (frames at the optimum)", ylim=(0.7, 64))
    ax.set_yticks([1, 2, 4, 8, 16, 32], labels=[1, 2, 4, 8, 16, 32])
    ax.minorticks_off()
    wo.knob_axis(ax, series[knob]["value"], wo.KNOBS[knob].label)
handles = [Line2D([], [], color=f"C{k}", lw=1, label=f"T*M = {b}") for k, b in enumerate(budgets)]
handles += [
    Line2D([], [], color="0.3", marker="o", ls="", ms=4, label="fitted T* (bootstrap band)"),
    Line2D([], [], color="0.3", marker="s", mfc="white", ls="", ms=4, label="measured best cell (seed range)"),
    Line2D(
        [],
        [],
        color="0.3",
        marker="$\\uparrow$",
        mfc="none",
        ls="",
        ms=7,
        label="open, arrow: at the grid's edge, a bound",
    ),
]
fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7)
save_figure(
    fig,
    "workload_optimum_tstar",
    optima.merge(measured, on=["knob", "value", "budget"], how="outer", suffixes=("", "_measured")),
    caption="Optimal frames T* on each budget line against needle duration, digit size and event density: fitted (bootstrap band) and measured (best cell, seed range); open markers with arrows are bounds at the grid's edge.",
)
optima.round(3)

# %% [markdown]
# ## How much tokens per frame are worth
# Left: measured, the share of the loss saved by 16 instead of 4 tokens per frame at the same T (T = 4,
# seed range), for the digit sizes (the cells the size knob adds). Right: from each workload's law, the share
# saved by doubling M at the middle of its grid (bootstrap interval), for every knob. If small objects need
# spatial detail, both grow as the digit shrinks. 16 tokens see a superset of the 4 tokens' input, so a share
# below zero says the 16-token cells are undertrained (the verdicts gate on it, `M16_EXCESS`).

# %%
pairs = wo.token_pairs(series["digit_size"])
gains = optima.drop_duplicates(["knob", "value"])
fig, axes = figure(2, 2, aspect=0.8)
axes = axes.ravel()
err = [pairs["mean"] - pairs["min"], pairs["max"] - pairs["mean"]]
axes[0].errorbar(pairs["value"], pairs["mean"], yerr=err, marker="s", color="C3", capsize=2)
axes[0].set(ylabel="loss saved, 16 vs 4 tokens", title="measured")
wo.knob_axis(axes[0], series["digit_size"]["value"], wo.KNOBS["digit_size"].label)
for ax, knob in zip(axes[1:], wo.KNOBS):
    g = gains[gains["knob"] == knob].sort_values("value")
    err = [g["token_gain"] - g["token_gain_ci_low"], g["token_gain_ci_high"] - g["token_gain"]]
    ax.errorbar(g["value"], g["token_gain"], yerr=err, marker="o", color="C0", capsize=2)
    ax.set(ylabel="loss saved by doubling M", title="fitted law")
    wo.knob_axis(ax, series[knob]["value"], wo.KNOBS[knob].label)
for ax in axes:
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    ax.title.set_fontsize(7)
token_data = gains[["knob", "value", "w", "law", "token_gain", "token_gain_ci_low", "token_gain_ci_high"]]
save_figure(
    fig,
    "workload_optimum_tokens",
    token_data.merge(pairs.assign(knob="digit_size"), on=["knob", "value"], how="outer"),
    caption="Share of the loss saved by more tokens per frame: measured at equal T for each digit size, and from each workload's law.",
)

# %% [markdown]
# ## Event density and the few-frame shortcut
# Accuracy on the counting question ("how many times did a digit appear?", 0 up to the density's number of
# flashes: it needs every event) with one frame and with the best cell, against chance (dotted), and the
# shortcut: the share of the best accuracy above chance that one frame already gets (seed range).

# %%
short = wo.shortcut(series["events"])
fig, axes = figure(2)
axes[0].plot(short["value"], short["acc_t1"], marker="o", color="C3", label="T = 1")
axes[0].plot(short["value"], short["acc_best"], marker="s", color="C0", label="best cell")
axes[0].plot(short["value"], short["chance"], color="0.5", lw=0.8, ls=":", label="chance")
axes[0].set(ylabel="counting accuracy", ylim=(0, 1.02))
wo.knob_axis(axes[0], short["value"], wo.KNOBS["events"].label)
axes[0].legend(fontsize=7)
err = [short["mean"] - short["min"], short["max"] - short["mean"]]
axes[1].errorbar(short["value"], short["mean"], yerr=err, marker="o", color="C2", capsize=2)
axes[1].set(ylabel="shortcut (T = 1 share of best)")
wo.knob_axis(axes[1], short["value"], wo.KNOBS["events"].label)
save_figure(
    fig,
    "workload_optimum_shortcut",
    short if not short.empty else series["events"],
    caption="Counting accuracy with one frame and with the best split, and the few-frame shortcut, against event density.",
)
short.round(3)

# %% [markdown]
# ## One law across workloads, checked on workloads it never saw
# Per knob, T* = G(w) budget^a fitted on the optima above without the held-out knob values (log-linear in
# log w and log budget), then asked for T* at the held-out values before their own optimum is looked at.
# Points: predicted T* against T* from each workload's own law (its own cells; the best cell where no law
# fits), filled: held out, open: fitted on; dotted, a factor of 2. An own T* at the grid's edge is a bound,
# marked by an arrow along x.

# %%
workload_laws, predicted = wo.law_table(optima, held_out)
for knob in wo.KNOBS:
    check = predicted[(predicted["knob"] == knob) & predicted["held_out"]]
    print(wo.law_sentence(knob, workload_laws.get(knob), check))
fig, ax = figure(width=5.2, aspect=0.62)
for k, knob in enumerate(wo.KNOBS):
    p = predicted[predicted["knob"] == knob]
    for held, face in ((False, "none"), (True, f"C{k}")):
        q = p[p["held_out"] == held]
        err = [q["frames_opt"] - q["frames_ci_low"], q["frames_ci_high"] - q["frames_opt"]]
        ax.errorbar(q["frames_opt"], q["predicted"], xerr=err, fmt="o", mfc=face, color=f"C{k}", capsize=2, ms=4)
    for x, y, bound in zip(p["frames_opt"], p["predicted"], p["bound"]):
        if bound:  # the own T* is a bound: arrow along x towards where it may lie
            ax.annotate(
                "",
                (x * (1.6 if bound == ">=" else 1 / 1.6), y),
                (x, y),
                arrowprops={"arrowstyle": "->", "color": f"C{k}"},
            )
span = np.array([0.7, 60])
ax.plot(span, span, color="0.4", lw=0.8)
ax.plot(span, 2 * span, color="0.6", lw=0.6, ls=":")
ax.plot(span, span / 2, color="0.6", lw=0.6, ls=":")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="T* from the workload's own law (its cells)",
    ylabel="predicted T* (workload law)",
)
handles = [Line2D([], [], color=f"C{k}", marker="o", ls="", ms=4, label=knob) for k, knob in enumerate(wo.KNOBS)]
handles += [
    Line2D([], [], color="0.3", marker="o", ls="", ms=4, label="held out"),
    Line2D([], [], color="0.3", marker="o", mfc="none", ls="", ms=4, label="fitted on"),
    Line2D([], [], color="0.3", marker="$\\rightarrow$", ls="", ms=7, label="own T* at the grid's edge: a bound"),
]
ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
save_figure(
    fig,
    "workload_optimum_heldout",
    predicted,
    caption="T* predicted by the workload law against T* from each workload's own law (its cells); held-out knob values filled, bounds at the grid's edge arrowed.",
)

# %% [markdown]
# ## Verdicts
# Judged by `studio.verdicts.judge` on per-seed paired statistics of the measured cells (each seed's best cell
# per line, token gain, shortcut), with the gates named in `studio.studies.workload_optimum.verdicts`: the
# workloads learned, their best cells trained, the 16-token cells trained (the (4, 16) control); the fitted
# T* is context. Event-Bench's shortcut holds by construction (one frame cannot count flashes it does not
# see): a pipeline check, not a finding.

# %%
save_verdicts(
    [
        wo.verdict_needle(
            wo.seed_optima(series["needle_frames"], budgets, min_line_cells),
            optima[optima["knob"] == "needle_frames"],
            wo.token_gains(series["digit_size"]),
        ),
        wo.verdict_size(wo.token_gains(series["digit_size"]), optima[optima["knob"] == "digit_size"]),
        wo.verdict_events(wo.shortcut_seeds(series["events"])),
    ],
    "workload_optimum",
)
