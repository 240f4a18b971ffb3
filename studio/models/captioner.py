"""A tiny captioning MLLM for the scenes of `studio.data.scenes`, with HACL's contrastive term optional.

    frames --(frozen cell encoder, `studio.models.cell_encoder`)--> (n, 18, C) visual features
           --(projector: MLP + visual position embedding)--> (n, 18, D) visual tokens
    [visual tokens, <bos>, caption, <eos>] --(LlamaForCausalLM fed inputs_embeds)--> next-token logits

    model, metrics, folder = cached_captioner({"arm": "hacl"}, train, val, seed=0)   # trained once

The language model is a transformers `LlamaForCausalLM` built from a config, so HF-style
`output_hidden_states` works and its blocks are named `lm.model.layers.{i}`.

Arms (`CaptionerConfig.arm`):
- "lm": language-modelling loss on the caption tokens (and <eos>) only;
- "contrastive": plus HACL's contrastive term without hallucinated negatives;
- "hacl": plus the term with every hallucinated caption of the batch as an extra negative in the
  image-to-text direction (Jiang et al., CVPR 2024; `studio.models.losses.hacl_loss`).

HACL's representations: the visual token sequence and the caption each go through the LM on their own
with the <eos> embedding appended; the last-layer hidden state at <eos> goes through a linear head
(hidden -> hidden/4) per modality and is L2-normalised; a learnable temperature starts at 0.07 and is
clamped to [0.001, 0.5]; the loss is the symmetric InfoNCE averaged over both directions, weight 1.0.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from studio.cache import cached, code_fingerprint, load_checked
from studio.config import from_dict
from studio.data import scenes as S
from studio.models.losses import hacl_loss
from studio.repro import cpu_threads, seed_everything
from studio.training import OptimConfig, make_trainer, quiet_lightning

ARMS = ("lm", "contrastive", "hacl")
N_VISUAL = S.FRAMES * S.GRID * S.GRID  # visual tokens per clip: one per cell per frame
WARMUP = 0.1  # share of the steps the one-cycle schedule warms up over
CACHE_KIND = "captioner"


@dataclass
class CaptionerConfig:
    """The network and its loss, plus what `fit_captioner` hands to `OptimConfig` (lr, weight_decay,
    steps) and to the data loader (batch_size)."""

    arm: str = "hacl"  # "lm", "contrastive" or "hacl"
    hidden: int = 64  # D: LM width; the contrastive heads map D -> D/4
    layers: int = 3
    heads: int = 4
    intermediate: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    steps: int = 600
    batch_size: int = 64
    contrastive_weight: float = 1.0
    temperature_init: float = 0.07
    temperature_min: float = 0.001
    temperature_max: float = 0.5

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; valid: {list(ARMS)}")
        if self.hidden % 4 or self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} must be divisible by 4 and by heads {self.heads}")


class Captioner(L.LightningModule):
    """The captioning MLLM as a Lightning module, handed its network config and its optimiser config.

    Batches are (visual features (B, N_VISUAL, C), caption ids (B, 11), hallucinated ids (B, 11)).
    The optimiser is AdamW under PyTorch's one-cycle schedule (`OneCycleLR`: cosine warm-up over
    `optim.warmup` of `optim.steps`, then cosine decay), as the captioner was first trained.
    """

    def __init__(self, config: CaptionerConfig | dict, feature_dim: int, optim: OptimConfig):
        super().__init__()
        cfg = config if isinstance(config, CaptionerConfig) else from_dict(CaptionerConfig, config)
        if optim.steps is None:
            raise ValueError("the captioner's one-cycle schedule needs OptimConfig.steps")
        self.cfg, self.optim = cfg, optim
        self.save_hyperparameters({"config": asdict(cfg), "feature_dim": feature_dim, "optim": asdict(optim)})
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = S.scene_tokenizer()
        self.pad_id, self.bos_id, self.eos_id = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
        lm_cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=cfg.hidden,
            intermediate_size=cfg.intermediate,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            num_key_value_heads=cfg.heads,
            max_position_embeddings=64,
            pad_token_id=self.pad_id,
            bos_token_id=self.bos_id,
            eos_token_id=self.eos_id,
            tie_word_embeddings=False,
        )
        lm_cfg._attn_implementation = "eager"  # the same numbers on every machine; sequences are short
        self.lm = LlamaForCausalLM(lm_cfg)
        # LLaVA-1.5's two-layer MLP projector, plus a learned position per cell and frame.
        self.projector = nn.Sequential(nn.Linear(feature_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden))
        self.visual_position = nn.Parameter(torch.zeros(N_VISUAL, cfg.hidden))
        nn.init.normal_(self.visual_position, std=0.02)
        if cfg.arm != "lm":
            self.visual_head = nn.Linear(cfg.hidden, cfg.hidden // 4)
            self.text_head = nn.Linear(cfg.hidden, cfg.hidden // 4)
            self.temperature = nn.Parameter(torch.tensor(float(cfg.temperature_init)))
        self.history: list[dict] = []

    # -- pieces -------------------------------------------------------------------------------------
    def embed_visual(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N_VISUAL, C) -> (B, N_VISUAL, D)."""
        return self.projector(feats) + self.visual_position

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def _special(self, token_id: int, batch: int) -> torch.Tensor:
        """(B, 1, D) embedding of one special token."""
        return self.embed_ids(torch.full((batch, 1), token_id, dtype=torch.long, device=self.device))

    def joint_embeds(self, feats: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[visual, <bos>, caption, <eos>]: (B, N_VISUAL + 1 + 11 + 1, D)."""
        b = feats.shape[0]
        return torch.cat(
            [
                self.embed_visual(feats),
                self._special(self.bos_id, b),
                self.embed_ids(ids),
                self._special(self.eos_id, b),
            ],
            dim=1,
        )

    def visual_alone(self, feats: torch.Tensor) -> torch.Tensor:
        """HACL's visual sequence: [visual, <eos>] (B, N_VISUAL + 1, D)."""
        return torch.cat([self.embed_visual(feats), self._special(self.eos_id, feats.shape[0])], dim=1)

    def caption_alone(self, ids: torch.Tensor) -> torch.Tensor:
        """HACL's caption sequence: [<bos>, caption, <eos>] (B, 13, D)."""
        b = ids.shape[0]
        return torch.cat([self._special(self.bos_id, b), self.embed_ids(ids), self._special(self.eos_id, b)], dim=1)

    def eos_state(self, embeds: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden state (after the final norm) at the last position: (B, D)."""
        return self.lm.model(inputs_embeds=embeds).last_hidden_state[:, -1]

    def lm_loss(self, feats: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy on caption tokens and <eos>; returns (loss, logits at those positions (B, 12, V))."""
        logits = self.lm(inputs_embeds=self.joint_embeds(feats, ids)).logits
        # The logit at <bos> predicts caption[0], ..., at caption[-1] predicts <eos>.
        pred = logits[:, N_VISUAL : N_VISUAL + ids.shape[1] + 1]
        target = torch.cat([ids, torch.full_like(ids[:, :1], self.eos_id)], dim=1)
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1)), pred

    def clamped_temperature(self) -> torch.Tensor:
        # As in HACL's (ALBEF-derived) code: clamp the parameter itself, then use it.
        with torch.no_grad():
            self.temperature.clamp_(self.cfg.temperature_min, self.cfg.temperature_max)
        return self.temperature

    def head_embeddings(self, feats: torch.Tensor | None = None, ids: torch.Tensor | None = None):
        """Normalised projected EOS states: visual (B, D/4) from feats, text (B', D/4) from ids."""
        v = (
            F.normalize(self.visual_head(self.eos_state(self.visual_alone(feats))), dim=-1)
            if feats is not None
            else None
        )
        t = F.normalize(self.text_head(self.eos_state(self.caption_alone(ids))), dim=-1) if ids is not None else None
        return v, t

    def contrastive_loss(self, feats, ids, hall_ids) -> torch.Tensor:
        b = ids.shape[0]
        both = ids if self.cfg.arm == "contrastive" else torch.cat([ids, hall_ids], dim=0)
        v, t_all = self.head_embeddings(feats, both)  # one pass for true and hallucinated captions
        h = None if self.cfg.arm == "contrastive" else t_all[b:]
        return hacl_loss(v, t_all[:b], h, self.clamped_temperature())

    def losses(self, batch) -> dict[str, torch.Tensor]:
        feats, ids, hall_ids = batch
        lm, pred = self.lm_loss(feats, ids)
        out = {"lm_loss": lm, "pred": pred}
        if self.cfg.arm == "lm":
            out["contrastive_loss"] = torch.zeros((), device=lm.device)
            out["loss"] = lm
        else:
            out["contrastive_loss"] = self.contrastive_loss(feats, ids, hall_ids)
            out["loss"] = lm + self.cfg.contrastive_weight * out["contrastive_loss"]
        return out

    # -- Lightning ----------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        out = self.losses(batch)
        for k in ("loss", "lm_loss", "contrastive_loss"):
            self.log(f"train/{k}", out[k], prog_bar=k == "loss")
        self.history.append(
            {
                "step": int(self.global_step),
                **{k: float(out[k].detach()) for k in ("loss", "lm_loss", "contrastive_loss")},
            }
        )
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.losses(batch)
        ids = batch[1]
        slots = torch.tensor(list(S.SLOT_POSITION.values()), device=ids.device)
        acc = (out["pred"][:, slots].argmax(-1) == ids[:, slots]).float().mean()
        self.log("val/loss", out["loss"], prog_bar=True)
        self.log("val/lm_loss", out["lm_loss"])
        self.log("val/caption_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        o = self.optim
        opt = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=o.betas)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=o.steps, pct_start=o.warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- analysis -----------------------------------------------------------------------------------
    @torch.no_grad()
    def representations(self, feats: torch.Tensor, ids: torch.Tensor, batch: int = 256) -> dict[str, np.ndarray]:
        """Per-layer representations of visual sequences and captions, each through the LM on its own.

        Returns float32 arrays of shape (n, layers + 1, D) (index 0 = embeddings, last = final layer
        after the norm): visual_eos, visual_mean (mean over visual tokens), text_eos, text_mean (mean
        over caption words).
        """
        self.eval()
        parts = {k: [] for k in ("visual_eos", "visual_mean", "text_eos", "text_mean")}
        for i in range(0, len(feats), batch):
            f, t = feats[i : i + batch].to(self.device), ids[i : i + batch].to(self.device)
            hv = torch.stack(
                self.lm.model(inputs_embeds=self.visual_alone(f), output_hidden_states=True).hidden_states, 1
            )
            ht = torch.stack(
                self.lm.model(inputs_embeds=self.caption_alone(t), output_hidden_states=True).hidden_states, 1
            )
            parts["visual_eos"].append(hv[:, :, -1])
            parts["visual_mean"].append(hv[:, :, :N_VISUAL].mean(2))
            parts["text_eos"].append(ht[:, :, -1])
            parts["text_mean"].append(ht[:, :, 1:-1].mean(2))
        return {k: torch.cat(v).float().cpu().numpy() for k, v in parts.items()}

    @torch.no_grad()
    def projected(self, feats: torch.Tensor, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """The contrastive heads' normalised embeddings (visual, text), or None for the "lm" arm."""
        if self.cfg.arm == "lm":
            return None
        self.eval()
        v, t = self.head_embeddings(feats.to(self.device), ids.to(self.device))
        return v.cpu().numpy(), t.cpu().numpy()

    @torch.no_grad()
    def generate(self, feats: torch.Tensor, max_len: int = S.CAPTION_LENGTH + 1) -> list[str]:
        """Greedy captions for visual features (B, N_VISUAL, C)."""
        self.eval()
        feats = feats.to(self.device)
        b = feats.shape[0]
        embeds = torch.cat([self.embed_visual(feats), self._special(self.bos_id, b)], dim=1)
        out = []
        for _ in range(max_len):
            nxt = self.lm(inputs_embeds=embeds).logits[:, -1].argmax(-1)
            out.append(nxt)
            embeds = torch.cat([embeds, self.embed_ids(nxt[:, None])], dim=1)
        ids = torch.stack(out, 1).cpu().numpy()
        return [S.decode(row) for row in ids]


def optim_config(cfg: CaptionerConfig) -> OptimConfig:
    """The optimiser config a captioner of `cfg` trains with."""
    return OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup=WARMUP, steps=cfg.steps)


def fit_captioner(
    config: CaptionerConfig | dict,
    train: tuple,
    val: tuple,
    *,
    seed: int = 0,
    progress: bool = False,
    threads: int | None = 1,
    log_dir=None,
) -> tuple[Captioner, dict]:
    """Train one captioner. train / val are (features (n, N_VISUAL, C), caption ids (n, 11),
    hallucinated ids (n, 11)) tensors. Deterministic per seed on the CPU. Returns (model in eval mode
    on the CPU, metrics: val/*, train/*, seconds). log_dir: where Lightning's CSV logs go.

    threads: torch CPU threads while training (restored after). One is the default because these
    models are tiny: on a shared 2-core machine two threads spun 10x slower than one (2.3 s vs 0.23 s
    per step, measured under load). None leaves torch's setting alone.
    """
    cfg = config if isinstance(config, CaptionerConfig) else from_dict(CaptionerConfig, config)
    with cpu_threads(threads):
        seed_everything(seed)
        model = Captioner(cfg, feature_dim=train[0].shape[-1], optim=optim_config(cfg))
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*train),
            batch_size=cfg.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        val_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*val), batch_size=256)
        # The flags the captioner always trained with; the rest are make_trainer's fixed ones.
        trainer = make_trainer(log_dir=log_dir, progress=progress, max_steps=cfg.steps, max_epochs=-1)
        with quiet_lightning(), warnings.catch_warnings():
            # short runs log less often than every epoch: expected, not a problem
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            t0 = time.perf_counter()
            trainer.fit(model, loader)
            seconds = time.perf_counter() - t0
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            metrics.update(trainer.validate(model, val_loader, verbose=False)[0])
    metrics["seconds"] = seconds
    return model.cpu().eval(), metrics


# ---------------------------------------------------------------------------------------------------
# One trained captioner per (config, seed, data), cached with studio.cache


def tensors_hash(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes: the data part of a cache key."""
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()[:16]


def cached_captioner(
    config: CaptionerConfig | dict,
    train: tuple,
    val: tuple,
    *,
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = False,
    log=print,
) -> tuple[Captioner, dict, Path]:
    """`fit_captioner`, trained once per (config, seed, threads, data, code) and loaded after.

    The cache folder holds model.safetensors (weights), model.json (what rebuilds the module),
    metrics.json (what `fit_captioner` returned, wall time included), history.json (per-step losses)
    and Lightning's training curves (metrics.csv, read them with `studio.training.curves`). The model
    is always the one loaded from the folder, so a first and a later run measure the same weights.
    Returns (model in eval mode on the CPU, metrics, folder).
    """
    cfg = config if isinstance(config, CaptionerConfig) else from_dict(CaptionerConfig, config)
    key = {"captioner": asdict(cfg), "seed": int(seed), "threads": threads, "data": tensors_hash(*train, *val)}

    def build(folder: Path) -> None:
        model, metrics = fit_captioner(cfg, train, val, seed=seed, progress=progress, threads=threads, log_dir=folder)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        spec = {"config": asdict(cfg), "feature_dim": int(train[0].shape[-1]), "optim": asdict(model.optim)}
        (folder / "model.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
        (folder / "history.json").write_text(json.dumps(model.history) + "\n")
        log(f"captioner {cfg.arm} seed {seed}: trained in {metrics['seconds']:.1f} s")

    folder = cached(CACHE_KIND, key, build, code=code_fingerprint(__name__), log=log)
    model, metrics = load_checked(folder, load_captioner)
    return model, metrics, folder


def load_captioner(folder: Path) -> tuple[Captioner, dict]:
    """(model in eval mode on the CPU, metrics) from a `cached_captioner` folder."""
    spec = json.loads((folder / "model.json").read_text())
    optim = OptimConfig(**{**spec["optim"], "betas": tuple(spec["optim"]["betas"])})
    # Building draws initial weights from torch's RNG: fork it, so loading leaves the caller's RNG alone.
    with torch.random.fork_rng(devices=[]):
        model = Captioner(spec["config"], feature_dim=spec["feature_dim"], optim=optim)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    model.history = json.loads((folder / "history.json").read_text())
    return model.eval(), json.loads((folder / "metrics.json").read_text())
