"""The tiny video-LM: frozen frame features -> frame selection -> token selection -> projector -> causal LM.

The LM is a transformers LlamaForCausalLM built from a config (no download) and fed `inputs_embeds`:

    [<bos>] [question words, left-padded] [T*M projected visual tokens] ["answer"] -> answer word

The loss is the cross-entropy of the answer word at the last position only (no loss on question or
visual positions), so val/loss is comparable across cells: ln(10) is chance for the digit tasks.
Visual tokens get a learned temporal (T) and spatial (M) embedding on top of Llama's rotary positions.

Batches are dicts: features (B, F, P, C) float (frozen encoder output for every raw frame) -- or
video (B, F, H, W) pixels when the module holds the frozen encoder --
task (B,) int64 task ids, answer_id (B,) int64 vocabulary ids of the answers.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn

from studio.data.video import TASKS
from studio.training import OptimConfig


def build_llama(vocab_size: int, width: int, layers: int, heads: int, max_len: int = 4096, mlp_ratio: int = 4):
    """A small LlamaForCausalLM from a config: width `width`, `layers` blocks, gated MLP of mlp_ratio x width."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=mlp_ratio * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        use_cache=False,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


class Projector(nn.Module):
    """(B, T, M, C) selected features -> (B, T*M, width) tokens, with time and space embeddings."""

    def __init__(self, in_dim: int, width: int, T: int, M: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, width), nn.GELU(), nn.Linear(width, width))
        self.time = nn.Parameter(torch.zeros(T, 1, width))
        self.space = nn.Parameter(torch.randn(1, M, width) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, M, _ = x.shape
        return (self.mlp(x) + self.time + self.space).reshape(B, T * M, -1)


class VideoLM(L.LightningModule):
    """Trains everything it is given except `encoder` (a Frozen module or None when fed features).

    Logs train/loss every step; at the end of validation val/loss, val/acc and val/acc_<task> over the
    whole validation set, also kept in `self.val_metrics` (plain floats).
    optim: studio.training.OptimConfig with lr, weight_decay, betas, warmup (share of steps warming up
    linearly, then cosine decay to 5 % of the peak) and steps all given (steps=None: no schedule length).
    """

    def __init__(
        self,
        frame_selector: nn.Module,
        token_selector: nn.Module,
        projector: nn.Module,
        lm: nn.Module,
        questions: torch.Tensor,
        ids: dict[str, int],
        optim: OptimConfig,
        tasks=TASKS,
        encoder: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.frame_selector, self.token_selector, self.projector, self.lm = (
            frame_selector,
            token_selector,
            projector,
            lm,
        )
        self.register_buffer("questions", questions.long(), persistent=False)  # (n_tasks, Q)
        self.ids, self.optim, self.tasks = dict(ids), optim, tuple(tasks)
        self.val_metrics: dict[str, float] = {}
        self._val: list[torch.Tensor] = []

    def visual_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, P, C) -> (B, T*M, width)"""
        return self.projector(self.token_selector(self.frame_selector(features)))

    def features_of(self, batch: dict) -> torch.Tensor:
        """Precomputed features (B, F, P, C), or the frozen encoder applied to pixels video (B, F, H, W)."""
        if "features" in batch:
            return batch["features"].float()
        if self.encoder is None:
            raise ValueError("batch has no 'features' and the module has no encoder for its 'video'")
        v = batch["video"].float()
        B, F, H, W = v.shape
        f = self.encoder(v.reshape(B * F, 1, H, W))
        return f.reshape(B, F, *f.shape[1:])

    def forward(self, batch: dict) -> torch.Tensor:
        """-> (B, vocab) logits of the answer position."""
        vis = self.visual_tokens(self.features_of(batch))
        emb = self.lm.get_input_embeddings()
        B = vis.shape[0]
        q = emb(self.questions[batch["task"]])  # (B, Q, width)
        bos = emb.weight[self.ids["bos"]].expand(B, 1, -1)
        cue = emb.weight[self.ids["answer"]].expand(B, 1, -1)
        seq = torch.cat([bos, q, vis, cue], 1)
        return self.lm(inputs_embeds=seq, logits_to_keep=1).logits[:, -1]

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch), batch["answer_id"])
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch["task"]))
        aux = getattr(self.lm, "aux", None)  # a backbone's extra terms (the MoE router's; none for Llama)
        if aux:
            for k, v in aux.items():
                if k != "loss":
                    self.log(f"train/{k}", v, on_step=True, on_epoch=False, batch_size=len(batch["task"]))
            loss = loss + aux["loss"]
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        loss = nn.functional.cross_entropy(logits, batch["answer_id"], reduction="none")
        hit = (logits.argmax(-1) == batch["answer_id"]).float()
        self._val.append(torch.stack([loss, hit, batch["task"].float()], 1).detach().cpu())

    def on_validation_epoch_start(self):
        self._val = []

    def on_validation_epoch_end(self):
        if not self._val:
            return
        v = torch.cat(self._val)
        if self.trainer is not None and self.trainer.world_size > 1:  # DDP: every rank saw a shard
            v = self.all_gather(v).reshape(-1, 3).cpu()
        m = {"val/loss": v[:, 0].mean().item(), "val/acc": v[:, 1].mean().item()}
        for i, name in enumerate(TASKS):
            sel = v[:, 2] == i
            if name in self.tasks and sel.any():
                m[f"val/acc_{name}"] = v[sel, 1].mean().item()
                m[f"val/loss_{name}"] = v[sel, 0].mean().item()
        self.val_metrics = m
        for k, val in m.items():
            # every rank holds the same gathered value: sync_dist averages identical numbers (exact)
            self.log(k, val, prog_bar=k in ("val/loss", "val/acc"), sync_dist=True)

    def configure_optimizers(self):
        o = self.optim
        decay = [p for n, p in self.named_parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.requires_grad and p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr,
            betas=o.betas,
        )
        if o.steps is None:
            raise ValueError("VideoLM's schedule needs OptimConfig.steps (the number of training steps)")
        warm = max(1, int(o.warmup * o.steps))

        def factor(step: int) -> float:  # linear warm-up, then cosine decay to 5 % of the peak
            if step < warm:
                return (step + 1) / warm
            done = min(1.0, (step - warm) / max(1, o.steps - warm))
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
