"""A tiny captioning MLLM for the scenes of `studio.data.scenes`, with HACL's contrastive term optional.

    frames --(frozen cell encoder, pretrained once)--> (n, 18, F) visual features
           --(projector: MLP + visual position embedding)--> (n, 18, H) visual tokens
    [visual tokens, <bos>, caption, <eos>] --(LlamaForCausalLM fed inputs_embeds)--> next-token logits

The language model is a transformers `LlamaForCausalLM` built from a config, so HF-style
`output_hidden_states` works and its blocks are named `lm.model.layers.{i}`.

Arms (`CaptionerConfig.arm`):
- "lm": language-modelling loss on the caption tokens (and <eos>) only;
- "contrastive": plus HACL's contrastive term without hallucinated negatives;
- "hacl": plus the term with every hallucinated caption of the batch as an extra negative in the
  image-to-text direction (Jiang et al., CVPR 2024).

HACL's representations: the visual token sequence and the caption each go through the LM on their own
with the <eos> embedding appended; the last-layer hidden state at <eos> goes through a linear head
(hidden -> hidden/4) per modality and is L2-normalised; a learnable temperature starts at 0.07 and is
clamped to [0.001, 0.5]; the loss is the symmetric InfoNCE averaged over both directions, weight 1.0.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.config import from_dict
from studio.repro import cpu_threads
from studio.data import scenes as S
from studio.models.pretrained import cached_pretrained

ARMS = ("lm", "contrastive", "hacl")
N_VISUAL = S.FRAMES * S.GRID * S.GRID  # visual tokens per clip: one per cell per frame




# ---------------------------------------------------------------------------------------------------
# The frozen image encoder: one 8 x 8 RGB cell -> a feature vector, pretrained to name what is in it.


@dataclass
class EncoderConfig:
    feature_dim: int = 64      # F: size of one visual feature
    width: int = 192           # hidden width of the cell MLP
    n_scenes: int = 1500       # pretraining clips (train-split digit scans); 2 frames x 9 cells each
    steps: int = 400           # pretraining steps
    batch_size: int = 256      # cells per step
    lr: float = 3e-3
    seed: int = 0
    version: int = 1           # bump when the pretraining code changes meaningfully


class CellEncoder(nn.Module):
    """forward(frames (n, 3, 24, 24)) -> features (n, 9, F), cells in row-major order.

    An MLP on each 8 x 8 cell (like a ViT patch embedding, but deeper): the scenes put every object
    exactly in one cell, so a per-cell encoder sees everything a caption names. BatchNorm, as both
    prototypes in shared/reference needed it. Heads name the object (or empty) and colour of a cell.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d_in = 3 * S.CELL * S.CELL
        self.body = nn.Sequential(
            nn.Linear(d_in, cfg.width), nn.BatchNorm1d(cfg.width), nn.ReLU(),
            nn.Linear(cfg.width, cfg.width), nn.BatchNorm1d(cfg.width), nn.ReLU(),
            nn.Linear(cfg.width, cfg.feature_dim), nn.BatchNorm1d(cfg.feature_dim), nn.ReLU(),
        )
        self.object_head = nn.Linear(cfg.feature_dim, S.N_OBJECT_CLASSES)
        self.colour_head = nn.Linear(cfg.feature_dim, S.N_COLOUR_CLASSES)

    @staticmethod
    def cells(frames: torch.Tensor) -> torch.Tensor:
        """(n, 3, 24, 24) -> (n, 9, 192) flattened cells."""
        n = frames.shape[0]
        x = frames.reshape(n, 3, S.GRID, S.CELL, S.GRID, S.CELL).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, S.GRID * S.GRID, 3 * S.CELL * S.CELL)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.cells(frames)
        n, c, d = x.shape
        return self.body(x.reshape(n * c, d)).reshape(n, c, -1)


def build_encoder(config: dict) -> CellEncoder:
    return CellEncoder(from_dict(EncoderConfig, config))


def pretrain_encoder(model: CellEncoder, config: dict) -> dict:
    """Train the cell encoder to name each cell's object and colour; return held-out accuracies."""
    cfg = from_dict(EncoderConfig, config)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    def cells_of(bank):
        frames = torch.from_numpy(bank["frames"].reshape(-1, 3, S.SIZE, S.SIZE))
        x = CellEncoder.cells(frames).reshape(-1, 3 * S.CELL * S.CELL)
        return x, torch.from_numpy(bank["cell_object"].reshape(-1)), torch.from_numpy(bank["cell_colour"].reshape(-1))

    x, y_obj, y_col = cells_of(S.scene_bank(cfg.n_scenes, seed=10_000 + cfg.seed, split="train"))
    xt, yt_obj, yt_col = cells_of(S.scene_bank(300, seed=20_000 + cfg.seed, split="test"))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    model.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen)
        f = model.body(x[idx])
        loss = F.cross_entropy(model.object_head(f), y_obj[idx]) + F.cross_entropy(model.colour_head(f), y_col[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        f = model.body(xt)
        p_obj, p_col = model.object_head(f).argmax(-1), model.colour_head(f).argmax(-1)
    full = yt_obj > 0
    return {"object_acc_occupied": float((p_obj[full] == yt_obj[full]).float().mean()),
            "colour_acc_occupied": float((p_col[full] == yt_col[full]).float().mean()),
            "empty_acc": float((p_obj[~full] == 0).float().mean()), "final_loss": float(loss.detach())}


def scene_encoder(config: dict | None = None, log=print) -> nn.Module:
    """The frozen, pretrained cell encoder for `config` (cached by its hash)."""
    cfg = asdict(from_dict(EncoderConfig, config))
    return cached_pretrained("scene-cells", cfg, build=build_encoder, train=pretrain_encoder, log=log)


@torch.no_grad()
def encode_clips(encoder: nn.Module, frames: np.ndarray, batch: int = 512) -> torch.Tensor:
    """frames (n, FRAMES, 3, 24, 24) -> visual features (n, N_VISUAL, F), frame-major, computed once."""
    x = torch.as_tensor(frames)
    n = x.shape[0]
    flat = x.reshape(n * S.FRAMES, 3, S.SIZE, S.SIZE)
    out = torch.cat([encoder(flat[i:i + batch]) for i in range(0, len(flat), batch)])
    return out.reshape(n, N_VISUAL, -1)


# ---------------------------------------------------------------------------------------------------
# The captioner


@dataclass
class CaptionerConfig:
    arm: str = "hacl"            # "lm", "contrastive" or "hacl"
    hidden: int = 64             # H: LM width; the contrastive heads map H -> H/4
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


def hacl_loss(v: torch.Tensor, t: torch.Tensor, h: torch.Tensor | None, temperature) -> torch.Tensor:
    """Symmetric InfoNCE of HACL, averaged over both directions.

    v (B, D) visual, t (B, D) matching captions, h (B', D) hallucinated captions or None; all
    L2-normalised. Image-to-text: row i scores t_i against every caption of the batch and every
    hallucinated caption (extra negatives). Text-to-image: caption i against every image.
    """
    targets = torch.arange(v.shape[0], device=v.device)
    candidates = t if h is None else torch.cat([t, h], dim=0)
    i2t = v @ candidates.T / temperature
    t2i = t @ v.T / temperature
    return 0.5 * (F.cross_entropy(i2t, targets) + F.cross_entropy(t2i, targets))


class Captioner(L.LightningModule):
    """Batches are (visual features (B, N_VISUAL, F), caption ids (B, 11), hallucinated ids (B, 11))."""

    def __init__(self, config: CaptionerConfig | dict, feature_dim: int):
        super().__init__()
        cfg = config if isinstance(config, CaptionerConfig) else from_dict(CaptionerConfig, config)
        self.cfg = cfg
        self.save_hyperparameters({"config": asdict(cfg), "feature_dim": feature_dim})
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = S.scene_tokenizer()
        self.pad_id, self.bos_id, self.eos_id = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
        lm_cfg = LlamaConfig(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                             num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                             num_key_value_heads=cfg.heads, max_position_embeddings=64,
                             pad_token_id=self.pad_id, bos_token_id=self.bos_id, eos_token_id=self.eos_id,
                             tie_word_embeddings=False)
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
        """(B, N_VISUAL, F) -> (B, N_VISUAL, H)."""
        return self.projector(feats) + self.visual_position

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def _special(self, token_id: int, batch: int) -> torch.Tensor:
        """(B, 1, H) embedding of one special token."""
        return self.embed_ids(torch.full((batch, 1), token_id, dtype=torch.long, device=self.device))

    def joint_embeds(self, feats: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[visual, <bos>, caption, <eos>]: (B, N_VISUAL + 1 + 11 + 1, H)."""
        b = feats.shape[0]
        return torch.cat([self.embed_visual(feats), self._special(self.bos_id, b), self.embed_ids(ids),
                          self._special(self.eos_id, b)], dim=1)

    def visual_alone(self, feats: torch.Tensor) -> torch.Tensor:
        """HACL's visual sequence: [visual, <eos>] (B, N_VISUAL + 1, H)."""
        return torch.cat([self.embed_visual(feats), self._special(self.eos_id, feats.shape[0])], dim=1)

    def caption_alone(self, ids: torch.Tensor) -> torch.Tensor:
        """HACL's caption sequence: [<bos>, caption, <eos>] (B, 13, H)."""
        b = ids.shape[0]
        return torch.cat([self._special(self.bos_id, b), self.embed_ids(ids), self._special(self.eos_id, b)], dim=1)

    def eos_state(self, embeds: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden state (after the final norm) at the last position: (B, H)."""
        return self.lm.model(inputs_embeds=embeds).last_hidden_state[:, -1]

    def lm_loss(self, feats: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy on caption tokens and <eos>; returns (loss, logits at those positions (B, 12, V))."""
        logits = self.lm(inputs_embeds=self.joint_embeds(feats, ids)).logits
        # The logit at <bos> predicts caption[0], ..., at caption[-1] predicts <eos>.
        pred = logits[:, N_VISUAL:N_VISUAL + ids.shape[1] + 1]
        target = torch.cat([ids, torch.full_like(ids[:, :1], self.eos_id)], dim=1)
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1)), pred

    def clamped_temperature(self) -> torch.Tensor:
        # As in HACL's (ALBEF-derived) code: clamp the parameter itself, then use it.
        with torch.no_grad():
            self.temperature.clamp_(self.cfg.temperature_min, self.cfg.temperature_max)
        return self.temperature

    def head_embeddings(self, feats: torch.Tensor | None = None, ids: torch.Tensor | None = None):
        """Normalised projected EOS states: visual (B, H/4) from feats, text (B', H/4) from ids."""
        v = F.normalize(self.visual_head(self.eos_state(self.visual_alone(feats))), dim=-1) if feats is not None else None
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
        self.history.append({"step": int(self.global_step), **{k: float(out[k].detach()) for k in ("loss", "lm_loss", "contrastive_loss")}})
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
        opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.cfg.lr, total_steps=self.cfg.steps, pct_start=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- analysis -----------------------------------------------------------------------------------
    @torch.no_grad()
    def representations(self, feats: torch.Tensor, ids: torch.Tensor, batch: int = 256) -> dict[str, np.ndarray]:
        """Per-layer representations of visual sequences and captions, each through the LM on its own.

        Returns float32 arrays of shape (n, layers + 1, H) (index 0 = embeddings, last = final layer
        after the norm): visual_eos, visual_mean (mean over visual tokens), text_eos, text_mean (mean
        over caption words).
        """
        self.eval()
        parts = {k: [] for k in ("visual_eos", "visual_mean", "text_eos", "text_mean")}
        for i in range(0, len(feats), batch):
            f, t = feats[i:i + batch].to(self.device), ids[i:i + batch].to(self.device)
            hv = torch.stack(self.lm.model(inputs_embeds=self.visual_alone(f), output_hidden_states=True).hidden_states, 1)
            ht = torch.stack(self.lm.model(inputs_embeds=self.caption_alone(t), output_hidden_states=True).hidden_states, 1)
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
        """Greedy captions for visual features (B, N_VISUAL, F)."""
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


def fit_captioner(config: CaptionerConfig | dict, train: tuple, val: tuple, *, seed: int = 0,
                  progress: bool = False, threads: int | None = 1) -> tuple[Captioner, dict]:
    """Train one captioner. train / val are (features (n, N_VISUAL, F), caption ids, hallucinated ids)
    tensors. Deterministic per seed on the CPU. Returns (model, metrics: val/*, train/*, seconds).

    threads: torch CPU threads while training (restored after). One is the default because these
    models are tiny: on a shared 2-core machine two threads spun 10x slower than one (2.3 s vs 0.23 s
    per step, measured under load). None leaves torch's setting alone.
    """
    with cpu_threads(threads):
        return _fit(config, train, val, seed=seed, progress=progress)




def _fit(config, train, val, *, seed, progress):
    from studio.repro import seed_everything

    cfg = config if isinstance(config, CaptionerConfig) else from_dict(CaptionerConfig, config)
    seed_everything(seed)
    model = Captioner(cfg, feature_dim=train[0].shape[-1])
    ds = torch.utils.data.TensorDataset(*train)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    val_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*val), batch_size=256)
    # Lightning's banners (GPU available, tips) and the warning about validating only after fit are
    # noise nine times per ablation: keep them out of notebooks.
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(val_dataloader|LeafSpec|litlogger).*")
            trainer = L.Trainer(max_steps=cfg.steps, max_epochs=-1, accelerator="auto", devices=1,
                                logger=False, enable_checkpointing=False, enable_progress_bar=progress,
                                enable_model_summary=False, num_sanity_val_steps=0)
            t0 = time.perf_counter()
            trainer.fit(model, loader)
            seconds = time.perf_counter() - t0
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            metrics.update(trainer.validate(model, val_loader, verbose=False)[0])
    finally:
        quiet.setLevel(level)
    metrics["seconds"] = seconds
    model = model.cpu().eval()
    return model, metrics
