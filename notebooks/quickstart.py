# %% [markdown]
# # Quickstart: how much does pooling a frame to fewer tokens lose?
#
# Video MLLMs squeeze each frame into M visual tokens, often by mean-pooling patch features to a
# sqrt(M) x sqrt(M) grid. Before training anything, a linear probe on scikit-learn's digit images asks
# how much of a digit's identity survives pooling to 1, 4, 16 or 64 "tokens". This notebook is also the
# template every study copies: parameters, seeding, one `studio` call per computation, and each figure
# saved with the data behind it.

# %% tags=["parameters"]
seed: int = 0  # seeds the splits and everything else
grids: list[int] = [1, 2, 4, 8]  # pooled grid sides; tokens per image = grid**2
n_splits: int = 5  # random train/test splits of the images (one per seed offset)
test_fraction: float = 0.3  # share of each class held out for the probe's test set

# %%
import studio
from studio.figures import figure, save_figure
from studio.studies.quickstart import CHANCE, probe_pooled, seed_spread, summarise, verdicts
from studio.verdicts import save_verdicts

studio.seed_everything(seed)
results = probe_pooled(grids=grids, seeds=range(seed, seed + n_splits), test_fraction=test_fraction)
summary = summarise(results)
summary

# %% [markdown]
# ## Probe accuracy against tokens per image
# Each point is the mean held-out accuracy over the random splits, with a 95 % interval over splits;
# the faint points are the individual splits. Chance is 10 %.

# %%
fig, ax = figure()
ax.scatter(results["tokens"], results["accuracy"], s=8, alpha=0.35, color="C0", label="one split")
ax.errorbar(
    summary["tokens"],
    summary["mean"],
    yerr=[summary["mean"] - summary["ci_low"], summary["ci_high"] - summary["mean"]],
    marker="o",
    color="C0",
    capsize=2,
    label="mean, 95 % CI",
)
ax.axhline(CHANCE, ls=":", color="0.4", lw=1, label="chance")
ax.set(
    xscale="log",
    xlabel="tokens per image (pooled grid$^2$)",
    ylabel="held-out probe accuracy",
    ylim=(0, 1.02),
    xticks=summary["tokens"],
    xticklabels=summary["tokens"],
)
ax.legend(loc="upper left")
save_figure(
    fig,
    "quickstart_pooling",
    results,
    tolerance=seed_spread(results),
    caption="Held-out linear-probe accuracy on digit images mean-pooled to 1-64 tokens per image (mean and 95% CI over random splits).",
)

# %% [markdown]
# ## What the numbers say
# The row below is computed in `studio.studies.quickstart` from the table above with the one rule of
# `studio.verdicts`: the accuracy the one-token grid (the image's mean pixel) loses against the finest grid
# (the raw 8 x 8 image), per split, and from how many tokens on the probe is within two points of its best.
# One token losing to the raw image holds by construction, so it is a pipeline check (a sanity row), not a
# finding. Whether a *model* needs those tokens depends on the question asked of the frame, which is what
# the visual-context study measures.

# %%
save_verdicts(verdicts(results, summary), "quickstart")
