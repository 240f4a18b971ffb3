# %% [markdown]
# # Frames or tokens for a pretrained video VLM
#
# The visual-context notebook asks "more frames T, or more tokens per frame M?" of a tiny video-LM trained
# here. This notebook asks it of a pretrained Hugging Face video VLM (inference only): the held-out answer
# loss and accuracy on the synthetic needle videos (or your own video questions) for every (T, M), with T
# set by sampling frames and M through the family's own resolution control. It writes the table the sweep
# writes, so `studio.scaling` fits it and the scaling-laws notebook reads it. Without `hf_model` it builds a
# tiny random model of `hf_family`, saves it with save_pretrained and loads it back (the CPU check of the
# path a real checkpoint takes): its numbers say nothing about any real model.

# %% tags=["parameters"]
seed: int = 0  # seeds the notebook, the synthetic videos and a random model's weights
hf_model: str | None = None  # Hub id or local folder of a video VLM (GPU machine); None = a random model
hf_family: str = "qwen2_vl"  # its family: a video family of studio.hf.families()
random_size: str = "tiny"  # without hf_model: "tiny" (CPU, ~0.1 M parameters) or "7b" (Qwen2-VL-7B's shape, GPU)
frames: list[int] = [1, 2, 4, 8]  # frames T sampled uniformly from each video
tokens: list = [1, 4, 16]  # visual tokens per frame M, set through the family's resolution (null: its own)
n_items: int = 32  # synthetic needle videos asked about (ignored with items_file)
items_file: str | None = None  # your own questions: a JSON-lines file (studio.capture.hf.video_qa.load_items)
law: str = "additive"  # law fitted to the (T, M) surface (studio.scaling), when the grid can hold one

# %%
import torch

import studio
from studio.figures import figure, save_figure, save_table
from studio.studies import pretrained_video as pv

studio.seed_everything(seed)
family = pv.check_request(hf_family, random_size, frames, tokens)  # refuses bad requests before any loading
cuda = torch.cuda.is_available()

# %% [markdown]
# ## Memory, before anything is loaded
# The weights exactly (parameters counted on the meta device from the config), the activations of one
# forward pass (every candidate answer scored at once) as an estimate, for the largest cell of the grid.
# With `hf_model` set the config is read from the Hub id or folder (no weights are read for this).

# %%
if hf_model is None:
    config = pv.real_size_config(family, random_size)
else:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(hf_model)
dtype = torch.bfloat16 if cuda else torch.float32
estimate = pv.memory_estimate(family, config, frames, tokens, dtype=dtype)
print(pv.describe_memory(estimate, hf_model or f"random {random_size} {family}", dtype))

# %% [markdown]
# ## The answers across frames and tokens
# One row per (T, M): mean answer loss (negative log-likelihood of the answer's tokens) and accuracy
# (the answer has the highest likelihood among the task's candidates), per task too.

# %%
vlm = pv.open_model(hf_model, family, random_size=random_size, seed=seed)
items = pv.video_items(n_items, seed=seed, items_file=items_file)
if cuda:
    torch.cuda.reset_peak_memory_stats()
table = pv.evaluate(vlm, items, frames, tokens, seed=seed)
if cuda:
    peak = torch.cuda.max_memory_allocated() / pv.GIB
    print(f"measured peak GPU memory {peak:.2f} GiB; estimated {estimate['total_gib']:.2f} GiB")
save_table(
    table,
    "pretrained_video_results",
    caption="One row per (frames, tokens per frame): answer loss and accuracy of the VLM, in the sweep's columns.",
)
table

# %% [markdown]
# ## The surface
# Left, the answer loss over frames T (columns) and tokens per frame M (rows); right, the accuracy. Visual
# tokens per video are in the table: a family may merge frames (Qwen: two frames per temporal patch).

# %%
fig, (left, right) = figure(2, 1)
for ax, metric, label in ((left, "val_loss", "answer loss"), (right, "val_acc", "accuracy")):
    grid = table.pivot(index="tokens_per_frame", columns="frames", values=metric)
    limits = dict(vmin=0, vmax=1) if metric == "val_acc" else {}
    im = ax.imshow(grid.values, origin="lower", cmap="viridis", aspect="auto", **limits)
    ax.set_xticks(range(grid.shape[1]), labels=grid.columns)
    ax.set_yticks(range(grid.shape[0]), labels=grid.index)
    ax.set(xlabel="frames T", ylabel="tokens per frame M", title=f"{label} ({vlm.family})")
    fig.colorbar(im, ax=ax, shrink=0.8)
save_figure(
    fig,
    "pretrained_video_surface",
    table,
    caption=f"Answer loss and accuracy of {hf_model or f'a random {random_size} {family}'} over frames and tokens per frame.",
)

# %% [markdown]
# ## Equal budgets
# Where several splits of one budget T*M were measured, which one the model prefers (lowest loss). A single
# pass of inference: there is no seed spread here, a difference is the model's.

# %%
splits = pv.equal_budget_splits(table)
fig, ax = figure(1, 1)
for k, (m, g) in enumerate(table.groupby("tokens_per_frame")):
    ax.plot(g["budget"], g["val_loss"], marker="o", color=f"C{k}", label=f"M = {m}")
ax.set(xscale="log", xlabel="visual budget T*M", ylabel="answer loss", title="frames grow along each line")
ax.legend(fontsize=7)
save_figure(fig, "pretrained_video_budget", table, caption="Answer loss against the budget T*M, one line per M.")
splits

# %% [markdown]
# ## A law over (T, M)
# The same fit the scaling-laws notebook makes (`studio.scaling.fit`), when the grid holds more cells than
# the law has parameters and both T and M vary. For bootstrap bands and a comparison of law families, run
# the scaling-laws notebook on this table: `-p measurements <run folder>/figures/pretrained_video_results.csv`.

# %%
fitted = pv.fit_law(table, law)
print(fitted if isinstance(fitted, str) else {k: round(v, 4) for k, v in fitted.params.items()})
