"""The hallucination study's configuration: one typed config, the policies and scorer arms, and the
representation_gap defaults whose cached captioners and encoder the benchmark reuses."""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.config import from_dict
from studio.data import hallucination as D
from studio.models import captioner as C
from studio.models import quality_scorer as Q
from studio.studies import representation_gap as rg

TYPES = D.TYPES
POLICIES = ("keep", "filter", "rewrite")
SCORER_ARMS = {"random": False, "hard": True}  # scorer arm -> hard negatives
# representation_gap's notebook defaults: the same config loads its cached captioners and encoder
GAP_DEFAULT = {
    "n_train": 3000,
    "n_eval": 400,
    "encoder": {"steps": 400, "n_scenes": 1500},
    "captioner": {"steps": 500, "batch_size": 64, "hidden": 64, "layers": 3},
}


@dataclass
class HallucinationConfig:
    arms: tuple = C.ARMS  # representation_gap's captioner arms evaluated by the benchmark
    seeds: list = field(default_factory=lambda: [0, 1, 2])  # training seeds of every model
    gap: dict = field(default_factory=lambda: dict(GAP_DEFAULT))  # representation_gap's AblationConfig
    n_statements: int = 200  # held-out scenes with statements (the first of representation_gap's eval scenes)
    n_calibration: int = 100  # the next held-out scenes: their statements set each captioner's yes threshold
    n_generate: int = 200  # held-out scenes captioned greedily (of the n_statements)
    other: int = 2  # other clips behind the captioner's yes/no score
    downstream_statements: bool = False  # also ask the downstream captioners the yes/no statements (slower)
    n_bootstrap: int = 200  # resamples of scenes behind every interval of the benchmark table
    rates: tuple = (0.3, 0.6)  # shares of low-quality captions in the training corpus
    n_label: int = 1500  # scenes of the scorer's labelled pairs (their own stream)
    threshold: float = 0.5  # a caption scored below it is flagged (dropped by filter, edited by rewrite)
    scorer: dict = field(default_factory=dict)  # ScorerConfig overrides (hard_negatives is set per arm)
    rewriter: dict = field(default_factory=dict)  # RewriterConfig overrides
    downstream: dict = field(default_factory=lambda: {"steps": 300, "layers": 2})  # CaptionerConfig overrides
    threads: int | None = 1  # per model; results do not depend on `workers`
    workers: int = 2  # downstream captioners trained at once, each in its own process

    @classmethod
    def from_dict(cls, values: dict | None) -> HallucinationConfig:
        cfg = from_dict(cls, dict(values or {}))
        rg.AblationConfig.from_dict(cfg.gap)
        from_dict(Q.ScorerConfig, cfg.scorer)
        from_dict(Q.RewriterConfig, cfg.rewriter)
        from_dict(C.CaptionerConfig, cfg.downstream)
        if "arm" in cfg.downstream or "hard_negatives" in cfg.scorer:
            raise ValueError("downstream.arm and scorer.hard_negatives are set by the study; leave them out")
        need = cfg.n_statements + cfg.n_calibration
        n_eval = cfg.gap.get("n_eval", rg.AblationConfig().n_eval)
        if need > n_eval:
            raise ValueError(f"n_statements + n_calibration = {need} > representation_gap's n_eval = {n_eval}")
        if cfg.n_generate > cfg.n_statements:
            raise ValueError(f"n_generate {cfg.n_generate} > n_statements {cfg.n_statements}")
        if cfg.workers < 1:
            raise ValueError(f"workers = {cfg.workers}: at least 1 (downstream captioners trained at once)")
        bad = [a for a in cfg.arms if a not in C.ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; valid: {list(C.ARMS)}")
        return cfg
