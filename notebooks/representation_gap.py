# %% [markdown]
# # The text-visual representation gap and the HACL ablation, at small scale
#
# "Mind the Gap" (Liang et al., NeurIPS 2022) found image and text embeddings of contrastive models in
# two separate cones (a gap of 0.82 for CLIP on MSCOCO). HACL (Jiang et al., CVPR 2024) saw the same
# separation inside MLLMs, with hallucinated captions entangled with faithful ones, and drew three
# arms: no contrastive loss, a contrastive loss, and HACL's contrastive loss with hallucinated captions
# as hard negatives. Its claims: the gap shrinks with contrastive learning, and only HACL pulls
# hallucinated captions away from faithful ones. Here a tiny captioning MLLM (frozen pretrained cell
# encoder, projector, 3-layer Llama) learns to caption synthetic clips of digits and shapes under each
# arm and several seeds; hallucinated captions change exactly one word (object, attribute, relation or
# event). We measure the gap and the separations per layer, picture them, and check the claims.

# %% tags=["parameters"]
seed: int = 0  # seeds the projection (the pictures show the first of `seeds`)
seeds: list[int] = [0, 1, 2]  # training seeds per arm (each also seeds that model's probes)
arms: list[str] = ["lm", "contrastive", "hacl"]  # no contrastive / contrastive / HACL
n_train: int = 3000  # training clips (train-split digit scans)
n_eval: int = 400  # held-out clips for every measurement (test-split scans)
n_generate: int = 200  # held-out clips captioned greedily for the CHAIR-style rate
steps: int = 500  # training steps per model
batch_size: int = 64  # also the number of in-batch negatives of the contrastive term
hidden: int = 64  # LM width (contrastive heads: hidden -> hidden / 4)
layers: int = 3  # LM layers
encoder_steps: int = 400  # pretraining steps of the frozen cell encoder (cached by config)
encoder_scenes: int = 1500  # clips the encoder is pretrained on
projection: str = "umap"  # "umap" or "pca" (the smoke profile skips umap's compilation)
projection_points: int = 200  # held-out clips per arm in the 2-D picture
hf_model: str | None = None  # a Hugging Face VLM id or local folder to analyse the same way (GPU)
hf_family: str | None = (
    None  # one of studio.hf.families() (twelve: llava, qwen2_5_vl, gemma3, ...); None = from its config
)
hf_scenes: int = 64  # clips shown to the HF VLM

# %%
import numpy as np
import pandas as pd
import torch

import studio
from studio.analysis.projection import plot_projection, project
from studio.data import scenes
from studio.figures import figure, save_figure, save_table
from studio.studies import representation_gap as hacl
from studio.verdicts import save_verdicts

studio.seed_everything(seed)
config = hacl.AblationConfig.from_dict(
    {
        "n_train": n_train,
        "n_eval": n_eval,
        "n_generate": n_generate,
        "encoder": {"steps": encoder_steps, "n_scenes": encoder_scenes},
        "captioner": {"steps": steps, "batch_size": batch_size, "hidden": hidden, "layers": layers},
    }
)
data = hacl.prepare_data(config)
print("frozen encoder, held-out cells:", {k: round(v, 3) for k, v in data["encoder_info"].items()})
bank = data["eval_bank"]
pd.DataFrame(
    {"caption": bank["captions"][:6], "hallucinated": bank["hallucinated"][:6], "type": bank["hallucination_type"][:6]}
)

# %% [markdown]
# ## Training the three arms
# Each arm is trained from the same initialisation seed on the same clips; only the loss differs.
# Trained models are cached (weights, metrics, training curves), so a rerun loads them.
# The table gives, per arm, the mean over seeds with a 95 % t-interval and the per-seed values.

# %%
results, models = hacl.run_ablation(arms, seeds=seeds, config=config, data=data, return_models=True)
summary = hacl.summary(results)
spread = hacl.seed_spread(results)  # per metric, the noise between seeds: what --check tolerates
save_table(
    summary,
    "representation_gap_results",
    tolerance=hacl.summary_tolerance(results),
    caption="HACL ablation: gap, separations, caption accuracy and CHAIR per arm (seed means).",
)
summary.pivot(index="quantity", columns="arm", values="mean").reindex(columns=arms).round(3)

# %% [markdown]
# ## The three-arm picture
# One projection of the last layer's EOS representations (the ones HACL's loss acts on) of held-out
# visual sequences, their captions and their hallucinated captions, for the first seed of every arm.
# Each arm's vectors sit in their own block of coordinates, so one fit lays every arm out as its own
# island, as separate fits would. Top: by modality; bottom: faithful vs hallucinated captions (visual
# points grey). Under each panel: the gap and the visual-vs-text probe accuracy; the share of clips
# whose own caption is closer to the visual representation than its hallucination (0.5 = entangled),
# on these states and, below it, in the contrastive heads' space.

# %%
first = seeds[0]
arrays, labels = hacl.projection_inputs({(a, first): models[(a, first)] for a in arms}, data, n=projection_points)
proj = project(arrays, method=projection, seed=seed, labels=labels)
per_arm = hacl.arm_numbers(results, first)
fig, axes = figure(len(arms), 2, aspect=1.1)
axes = np.atleast_2d(axes).reshape(2, len(arms))
for j, arm in enumerate(arms):
    part = proj[proj.arm == arm]
    part.attrs = proj.attrs
    plot_projection(
        part,
        hues=("group", "caption"),
        axes=axes[:, j],
        titles=(f"{hacl.ARM_LABELS[arm]}: by modality", f"{hacl.ARM_LABELS[arm]}: captions"),
    )
    axes[0, j].set_xlabel(f"gap {per_arm.loc[arm, 'gap']:.2f}, probe {per_arm.loc[arm, 'vt_probe']:.2f}")
    heads = per_arm.loc[arm, "fh_pairwise_heads"]
    axes[1, j].set_xlabel(
        f"faithful closer: {per_arm.loc[arm, 'fh_pairwise']:.2f}"
        + (f"\nin the heads' space: {heads:.2f}" if not np.isnan(heads) else "")
    )
    if j > 0:  # one legend per row is enough
        axes[0, j].get_legend().remove()
        axes[1, j].get_legend().remove()
save_figure(
    fig,
    "representation_gap_arms",
    proj,
    caption=f"{projection.upper()} of last-layer EOS states per arm: modality and faithful vs hallucinated captions.",
)

# %% [markdown]
# ## Layer by layer
# The gap between visual sequences and their captions, a linear probe's held-out accuracy at telling
# them apart, and the faithful-over-hallucinated share, at every layer (0 = embeddings), for the EOS
# state (solid) and the mean over tokens (dashed). Lines are seed means; bands span the seeds.

# %%
top = hacl.last_layer(results)
curves = hacl.layer_curves(results)
fig, axes = figure(3, 1, aspect=0.8)
for ax, (metric, label) in zip(
    axes,
    [
        ("gap", "modality gap"),
        ("vt_probe", "visual vs text probe acc"),
        ("fh_pairwise", "faithful closer (share of clips)"),
    ],
):
    for i, arm in enumerate(arms):
        for pool, ls in (("eos", "-"), ("mean", "--")):
            c = curves[(curves.arm == arm) & (curves.pool == pool) & (curves.metric == metric)]
            ax.plot(
                c["layer"], c["mean"], ls=ls, marker="o", ms=3, color=f"C{i}", label=f"{hacl.ARM_LABELS[arm]} ({pool})"
            )
            ax.fill_between(c["layer"], c["min"], c["max"], color=f"C{i}", alpha=0.15, lw=0)
    ax.set(xlabel="layer", ylabel=label, xticks=range(top + 1))
    if metric != "gap":
        ax.axhline(0.5, ls=":", color="0.4", lw=1)
handles, names = axes[0].get_legend_handles_labels()
fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=7)
save_figure(
    fig,
    "representation_gap_layers",
    curves,
    tolerance=hacl.by_metric(spread, "mean", "min", "max"),
    caption="Per-layer modality gap, visual/text probe accuracy and faithful-vs-hallucinated share, per arm.",
)

# %% [markdown]
# ## The embedding-shift experiment
# Liang et al. shift both modalities towards each other along the unit gap vector and watch the
# distance between the centroids fall (CLIP: 0.822, 0.600, 0.350, 0.084 in steps of 0.125). Here the
# same on the last-layer EOS states of each arm's first seed, in steps of an eighth of its own gap
# (both sides move, so four steps close the whole gap).

# %%
shift = hacl.shift_table(models, data, arms, first)
fig, axes = figure(2, 1)
for i, arm in enumerate(arms):
    s = shift[shift.arm == arm]
    axes[0].plot(s["lam"], s["distance"], marker="o", ms=3, color=f"C{i}", label=hacl.ARM_LABELS[arm])
    axes[1].plot(s["lam"], s["matched_cosine"], marker="o", ms=3, color=f"C{i}", label=hacl.ARM_LABELS[arm])
axes[0].plot(
    [0, 0.125, 0.25, 0.375], [0.822, 0.600, 0.350, 0.084], ls=":", color="0.3", marker="x", label="CLIP (paper)"
)
axes[0].set(xlabel="shift $\\lambda$ along the unit gap", ylabel="distance between centroids")
axes[1].set(xlabel="shift $\\lambda$ along the unit gap", ylabel="matched visual-caption cosine")
axes[0].legend(fontsize=7)
save_figure(
    fig,
    "representation_gap_shift",
    shift,
    tolerance={"distance": spread["gap"], "matched_cosine": spread["matched_cosine"]},  # the cones: seed 0 only
    caption="Embedding shift along the gap: the centroid distance falls and matched cosine rises, per arm.",
)
shift.pivot(index="step", columns="arm", values="distance").round(3)

# %% [markdown]
# ## Captions and hallucinations
# Left: caption quality (teacher-forced accuracy on the six slot words; greedy captions exactly right)
# and the CHAIR-style rate (share of mentioned objects and colour-object attributes that are not in the
# clip), seed means with the seed range. Right: the faithful-over-hallucinated share at the last layer by
# hallucination type.

# %%
out_rows, by_type = hacl.hallucination_rows(results)
quality = hacl.caption_quality(out_rows)  # per arm and metric: seed mean, min, max
fig, axes = figure(2, 1)
width = 0.8 / len(arms)
for i, arm in enumerate(arms):
    q = quality[quality.arm == arm].set_index("metric").reindex(hacl.CAPTION_QUALITY)
    axes[0].bar(
        np.arange(3) + i * width,
        q["mean"],
        width,
        yerr=[q["mean"] - q["min"], q["max"] - q["mean"]],
        color=f"C{i}",
        label=hacl.ARM_LABELS[arm],
        capsize=2,
    )
    t = by_type[by_type.arm == arm].groupby("type")["value"].mean().reindex(scenes.HALLUCINATION_TYPES)
    axes[1].bar(np.arange(4) + i * width, t.to_numpy(), width, color=f"C{i}", label=hacl.ARM_LABELS[arm])
axes[0].set(xticks=np.arange(3) + width, xticklabels=["slot acc", "exact caption", "CHAIR"], ylim=(0, 1.05))
axes[1].set(
    xticks=np.arange(4) + width,
    xticklabels=scenes.HALLUCINATION_TYPES,
    ylim=(0, 1.05),
    ylabel="faithful closer than hallucinated",
)
axes[1].axhline(0.5, ls=":", color="0.4", lw=1)
axes[0].legend(fontsize=7)
save_figure(
    fig,
    "representation_gap_hallucination",
    pd.concat([out_rows, by_type], ignore_index=True),
    tolerance=hacl.by_metric(spread, "value"),
    caption="Caption accuracy, CHAIR-style hallucination rate, and faithful-vs-hallucinated share by type, per arm.",
)

# %% [markdown]
# ## Does the small run show what HACL claims?
# Computed in `studio.studies.representation_gap.verdicts` by the workbench's one rule (`studio.verdicts`):
# each claim is a per-seed paired effect with a 95 % t interval: reproduced above 0, not reproduced below the
# smallest effect that matters, inconclusive otherwise or with fewer than three usable seeds, untestable when
# a competence gate fails (here: every compared arm's slot accuracy above a blind guess). The gap claim is
# judged per contrastive arm against the LM-only arm; "only HACL separates" takes, per seed, HACL's
# faithful-closer share minus the best of the other arms and of chance (0.5). A seed whose training loss
# did not fall, or whose gap lies far outside its arm's other seeds (`failed_seeds`), is named and set aside.
# Two sanity rows check what holds by construction: a probe on captions alone (without the image) cannot tell
# faithful from hallucinated (every caption is plausible; only the image makes one false; its folds keep each
# caption with its one-word twin, `paired=True`), and the embedding layer's EOS state has not seen the caption.

# %%
verdicts = save_verdicts(hacl.verdicts(results), "representation_gap")

# %% [markdown]
# ## The same analysis on a Hugging Face VLM
# With `hf_model` set (a hub id or a local folder; a GPU machine for real checkpoints), the held-out
# clips' first frames go through that VLM with their captions and hallucinated captions, and the gap,
# the visual/text probe and the faithful-over-hallucinated share are measured per decoder layer.

# %%
if hf_model is None:
    print("hf_model is None: the Hugging Face VLM analysis is skipped (set -p hf_model ID [-p hf_family F]).")
else:
    from studio.hf import load_vlm

    cuda = torch.cuda.is_available()
    vlm = load_vlm(hf_model, family=hf_family, dtype=torch.bfloat16 if cuda else None, device="cuda" if cuda else None)
    hf_rows = hacl.hf_gap_profile(vlm, n=hf_scenes, seed=seed)
    fig, ax = figure()
    for i, (metric, part) in enumerate(hf_rows.groupby("metric", sort=False)):
        ax.plot(part["layer"], part["value"], marker="o", ms=3, color=f"C{i}", label=metric)
    ax.set(xlabel="decoder layer", ylabel="value", title=f"{hf_model} ({vlm.family})")
    ax.legend(fontsize=7)
    save_figure(
        fig,
        "representation_gap_hf",
        hf_rows,
        caption="Gap, visual/text probe and faithful-vs-hallucinated share per layer of a Hugging Face VLM.",
    )
    print(hf_rows.pivot(index="layer", columns="metric", values="value").round(3))
