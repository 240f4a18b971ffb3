"""Language-model backbones of the tiny video-LM, and the scan-order connector, at matched size.

    lm = build_backbone("mamba", vocab_size, width=64, layers=2, heads=4, mlp_ratio=2)
    logits = lm(inputs_embeds=seq, logits_to_keep=1).logits          # seq (B, S, D) -> (B, 1, V)
    proj = ScanProjector(in_dim, width, T, M, scan="bidirectional")  # (B, T, M, C) -> (B, T*M, D)

Every backbone takes `inputs_embeds` (B, S, D), ties its output head to its input embedding, and has
`get_input_embeddings()`, so VideoLM feeds them all the same sequence:
- `llama`: transformers' LlamaForCausalLM (studio.models.video_lm.build_llama, unchanged): attention,
  cost ~ S^2 per layer on long sequences.
- `mamba`: a Mamba state-space LM (VL-Mamba's backbone) from the `mambapy` package: its parallel scan in
  plain PyTorch runs on a CPU (transformers' Mamba without the CUDA kernels falls back to a sequential
  scan measured ~100x slower than the Llama here; see /work/shared/reference/backbones.md); on a GPU
  with `mamba_ssm` installed its CUDA selective scan is used. Cost ~ S. The inner width is chosen so
  that the parameter count matches the Llama's (`mamba_inner_width`).
- `moe`: transformers' MixtralForCausalLM, a mixture-of-experts decoder (Kimi-VL's kind of backbone):
  EXPERTS experts per layer, TOP_K routed per token, each expert's MLP 1/TOP_K of the Llama's, so the
  *active* parameters per token match the Llama's (plus a router of EXPERTS x D per layer). The
  Switch-Transformer load-balancing loss (x ROUTER_AUX_COEF) joins the training loss through
  `lm.aux` (read by VideoLM.training_step), with `router_balance`: the entropy of the share of routed
  tokens per expert over log(EXPERTS) (1 = perfectly even, 0 = every token to one expert).

Scan order (VL-Mamba's VSS connector, for any backbone): `ScanProjector` maps each frame's G x G token
grid (M = G*G, row-major as the token selector pools it) to D, runs ONE Mamba block over the grid
in each direction of the scan, puts the outputs back in grid order, sums them, and adds the
residual: V' = Linear(V); V_out = Linear(Norm(sum_d unscan_d(Mamba(scan_d(GELU(V')))) + V')) (VL-Mamba's
VSS-L2). Scans: `row` (row-major, one direction), `bidirectional` (row-major forward and backward,
VL-Mamba's BSM), `cross` (rows and columns, each both ways: CSM). `none` is the plain MLP Projector.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

BACKBONES = ("llama", "mamba", "moe")
SCANS = ("none", "row", "bidirectional", "cross")
EXPERTS, TOP_K = 4, 2  # a tiny MoE: 4 experts, top-2 (Kimi-VL: 64 routed, top-6)
ROUTER_AUX_COEF = 0.01  # weight of the load-balancing loss (Mixtral's default is 0.001; tiny nets need more)
MAMBA_STATE, MAMBA_CONV = 16, 4  # mambapy's defaults (d_state, d_conv)


def check_backbone(name: str) -> str:
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {list(BACKBONES)}, got {name!r}")
    return name


def check_scan(name: str) -> str:
    if name not in SCANS:
        raise ValueError(f"scan must be one of {list(SCANS)}, got {name!r}")
    return name


def build_backbone(
    name: str, vocab_size: int, width: int, layers: int, heads: int, max_len: int = 4096, mlp_ratio: int = 4
) -> nn.Module:
    """The causal LM `name` at matched size (see the module docstring); refuses an unknown name."""
    from studio.models.video_lm import build_llama

    check_backbone(name)
    if name == "llama":  # exactly today's call: same parameters in the same order, same random numbers
        return build_llama(vocab_size, width, layers, heads, max_len=max_len, mlp_ratio=mlp_ratio)
    if name == "mamba":
        return MambaLM(vocab_size, width, layers, mamba_inner_width(width, mlp_ratio))
    return build_moe(vocab_size, width, layers, heads, max_len=max_len, mlp_ratio=mlp_ratio)


# ---------------------------------------------------------------- parameter counts
def llama_layer_params(width: int, mlp_ratio: int) -> int:
    """One Llama block: q, k, v, o (4 D^2), gated MLP (3 D x ratio*D), two RMSNorms (2 D)."""
    return 4 * width * width + 3 * width * mlp_ratio * width + 2 * width


def mamba_layer_params(width: int, inner: int, state: int = MAMBA_STATE, conv: int = MAMBA_CONV) -> int:
    """One mambapy ResidualBlock of inner width E: in_proj D x 2E, depthwise conv E x (conv + 1),
    x_proj E x (R + 2N), dt_proj R x E + E, A_log E x N, D skip E, out_proj E x D, RMSNorm D (R = ceil(D/16))."""
    rank = math.ceil(width / 16)
    return inner * (2 * width + conv + 1 + rank + 2 * state + rank + 1 + state + 1 + width) + width


def mamba_inner_width(width: int, mlp_ratio: int) -> int:
    """The inner width E whose Mamba block is closest in parameters to a Llama block."""
    target = llama_layer_params(width, mlp_ratio)
    return min(range(1, 16 * width + 1), key=lambda e: abs(mamba_layer_params(width, e) - target))


def parameter_counts(lm: nn.Module) -> dict[str, int]:
    """{"total": all trainable parameters, "active": those one token goes through (MoE: TOP_K of the
    experts' parameters; otherwise the total)."""
    total = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    experts = [m for m in lm.modules() if type(m).__name__ == "MixtralExperts"]
    idle = sum(
        (m.num_experts - TOP_K) * (m.gate_up_proj.numel() + m.down_proj.numel()) // m.num_experts for m in experts
    )
    return {"total": int(total), "active": int(total - idle)}


# ---------------------------------------------------------------- Mamba
class MambaLM(nn.Module):
    """Embedding -> `layers` mambapy residual Mamba blocks -> RMSNorm -> head tied to the embedding."""

    def __init__(self, vocab_size: int, width: int, layers: int, inner: int):
        super().__init__()
        from mambapy.mamba import Mamba, MambaConfig, RMSNorm

        cfg = MambaConfig(d_model=width, n_layers=layers, d_state=MAMBA_STATE, d_conv=MAMBA_CONV)
        cfg.d_inner = int(inner)  # mambapy derives it from an integer expand factor; we match parameters
        cfg.use_cuda = _mamba_cuda()
        self.embed = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.mamba = Mamba(cfg)
        self.norm = RMSNorm(width)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, inputs_embeds: torch.Tensor, logits_to_keep: int = 0) -> SimpleNamespace:
        """(B, S, D) -> logits (B, S or logits_to_keep, V)."""
        h = self.norm(self.mamba(inputs_embeds))
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return SimpleNamespace(logits=h @ self.embed.weight.T)


def _mamba_cuda() -> bool:
    """Use mamba_ssm's CUDA selective scan when a GPU and the package are there (mambapy falls back otherwise)."""
    if not torch.cuda.is_available():
        return False
    try:
        import mamba_ssm  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- mixture of experts
class MoELM(nn.Module):
    """transformers' MixtralForCausalLM on inputs_embeds; `aux` holds the last forward's router terms:
    loss (ROUTER_AUX_COEF x the load-balancing loss, added to the training loss), router_balance, router_aux."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.aux: dict[str, torch.Tensor] = {}

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, inputs_embeds: torch.Tensor, logits_to_keep: int = 0) -> SimpleNamespace:
        from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

        out = self.model(inputs_embeds=inputs_embeds, logits_to_keep=logits_to_keep, output_router_logits=True)
        routers = tuple(out.router_logits)
        aux = load_balancing_loss_func(routers, EXPERTS, TOP_K)
        self.aux = {
            "loss": ROUTER_AUX_COEF * aux,
            "router_aux": aux.detach(),
            "router_balance": router_balance(routers),
        }
        return SimpleNamespace(logits=out.logits)


def router_balance(router_logits, experts: int = EXPERTS, top_k: int = TOP_K) -> torch.Tensor:
    """Entropy of the share of top-k assignments per expert (all layers' tokens) / log(experts): 1 = even."""
    with torch.no_grad():
        picks = torch.cat([torch.topk(r.float(), top_k, dim=-1).indices.reshape(-1) for r in router_logits])
        share = torch.bincount(picks, minlength=experts).float() / picks.numel()
        ent = -(share * share.clamp_min(1e-12).log()).sum()
        return ent / math.log(experts)


def build_moe(vocab_size: int, width: int, layers: int, heads: int, max_len: int = 4096, mlp_ratio: int = 4):
    """A tiny Mixtral: the Llama's attention and sizes, EXPERTS experts of MLP width mlp_ratio*D/TOP_K."""
    from transformers import MixtralConfig, MixtralForCausalLM

    if (mlp_ratio * width) % TOP_K:
        raise ValueError(f"moe: mlp_ratio * width = {mlp_ratio * width} must divide by top-k {TOP_K}")
    cfg = MixtralConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=mlp_ratio * width // TOP_K,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_len,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        router_aux_loss_coef=ROUTER_AUX_COEF,
        output_router_logits=True,
        tie_word_embeddings=True,
        use_cache=False,
        sliding_window=None,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    cfg._attn_implementation = "sdpa"
    return MoELM(MixtralForCausalLM(cfg))


# ---------------------------------------------------------------- scan-order connector
def scan_orders(scan: str, G: int) -> list[torch.Tensor]:
    """Index orders (each (G*G,), a permutation of the row-major grid) that `scan` runs its Mamba block over."""
    check_scan(scan)
    rows = torch.arange(G * G)
    cols = rows.reshape(G, G).T.reshape(-1)
    return {
        "none": [],
        "row": [rows],
        "bidirectional": [rows, rows.flip(0)],
        "cross": [rows, rows.flip(0), cols, cols.flip(0)],
    }[scan]


class ScanProjector(nn.Module):
    """(B, T, M, C) selected features -> (B, T*M, width): VL-Mamba's VSS-L2 connector over each frame's
    G x G grid (M = G*G) in the scan's orders, with the same time and space embeddings as Projector."""

    def __init__(self, in_dim: int, width: int, T: int, M: int, scan: str = "bidirectional"):
        super().__init__()
        from mambapy.mamba import MambaBlock, MambaConfig

        G = math.isqrt(M)
        if G * G != M:
            raise ValueError(f"scan {scan!r} needs a square token grid: tokens_per_frame = G*G, got {M}")
        if scan == "none":
            raise ValueError("scan 'none' is the plain Projector; ScanProjector needs one of row, bidirectional, cross")
        for i, order in enumerate(scan_orders(scan, G)):
            self.register_buffer(f"order{i}", order, persistent=False)
        self.n_orders = len(scan_orders(scan, G))
        self.inp = nn.Linear(in_dim, width)
        cfg = MambaConfig(d_model=width, n_layers=1, d_state=MAMBA_STATE, d_conv=MAMBA_CONV)
        cfg.use_cuda = _mamba_cuda()
        self.scan = MambaBlock(cfg)  # one Mamba layer shared by every direction, as in VL-Mamba's VSS
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, width)
        self.time = nn.Parameter(torch.zeros(T, 1, width))
        self.space = nn.Parameter(torch.randn(1, M, width) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, M, _ = x.shape
        v = self.inp(x).reshape(B * T, M, -1)  # (B*T, M, D)
        g = nn.functional.gelu(v)
        merged = torch.zeros_like(v)
        for i in range(self.n_orders):
            order = getattr(self, f"order{i}")
            y = self.scan(g[:, order])  # the grid in this direction
            merged = merged.index_add(1, order, y)  # back to row-major, summed over directions
        out = self.out(self.norm(merged + v)).reshape(B, T, M, -1)
        return (out + self.time + self.space).reshape(B, T * M, -1)
