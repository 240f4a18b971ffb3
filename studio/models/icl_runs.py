"""The tiny ICL model's trained artefacts, each built once and cached (studio.cache).

    curve, net = emergence_run(steps=600, every=50, seed=0)       # trains, or loads the cached run
    row = tradeoff_cell(n_classes=80, burstiness=1.0, steps=300)
    net, rows = symdpo_baseline(SymDPOConfig(), seed=0)
    net, rows = symdpo_arm(SymDPOConfig(), "symdpo", seed=0)      # fine-tunes the cached baseline

Each entry is a folder CACHE/<kind>/<key> keyed by the run's config and by the code fingerprint of this
module (which covers everything it imports: the sampler, the network, the Lightning modules, the
encoder): model.safetensors (the ICLNet, frozen encoder included), the run's small table as JSON
(Python floats round-trip exactly, so a warm run gives byte-identical tables) and logs/metrics.csv
(the training curves, `studio.training.curves`). Cold and warm runs both return what is read back
from the folder, so they cannot differ.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from torch import nn

from studio.cache import cached, code_fingerprint, load_checked
from studio.config import from_dict as config
from studio.models.digit_encoder import DigitEncoderConfig
from studio.models.episode_sampler import EpisodeConfig, eval_batch, icl_eval_config, iwl_eval_config
from studio.models.icl_net import ICLNetConfig, accuracy, build_net, load_weights, save_weights
from studio.models.icl_vocab import MAX_CLASSES
from studio.models.symdpo import BASELINE_FIELDS, SymDPOConfig, eval_sets, finetune, measure, train_baseline
from studio.training import OptimConfig

TABLE = "table.json"
LOGS = "logs"  # make_trainer's log_dir inside the entry: metrics.csv of the training run


def _quiet(_: str) -> None:
    pass


def _code() -> str:
    return code_fingerprint(__name__)


def _write_table(rows: list[dict], folder: Path) -> None:
    (Path(folder) / TABLE).write_text(json.dumps(rows, indent=1) + "\n")


def _read_table(folder: Path) -> list[dict]:
    return json.loads((Path(folder) / TABLE).read_text())


def _load(folder: Path, net: nn.Module) -> tuple[nn.Module, list[dict]]:
    return load_checked(folder, lambda f: (load_weights(net, f), _read_table(f)))


def emergence_run(
    data: EpisodeConfig | dict | None = None,
    steps: int = 600,
    every: int = 50,
    seed: int = 0,
    optim: OptimConfig | dict | None = None,
    net: ICLNetConfig | dict | None = None,
    encoder: DigitEncoderConfig | dict | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, nn.Module]:
    """Held-out accuracy against training steps, long format (step, seconds, probe, accuracy), and the
    trained ICLNet.

    probes: "in-context" (held-out images, 2-way, symbols re-drawn per episode: chance 0.5) and
    "in-weights" (held-out images, fixed words, no demonstration of the query's class).
    Default training data: bursty episodes, 80 % with re-drawn symbols, 20 % with fixed words.
    """
    data = config(EpisodeConfig, data if data is not None else {"symbol_share": 0.8})
    optim, net, encoder = config(OptimConfig, optim), config(ICLNetConfig, net), config(DigitEncoderConfig, encoder)
    key = {
        "data": asdict(data),
        "steps": steps,
        "every": every,
        "seed": seed,
        "optim": asdict(optim),
        "net": asdict(net),
        "encoder": asdict(encoder),
    }

    def build(folder: Path) -> None:
        from studio.models.icl_module import train_icl

        sets = {
            "in-context": icl_eval_config(shots=data.shots, ways=data.ways),
            "in-weights": iwl_eval_config(shots=data.shots),
        }
        module, hist = train_icl(
            data,
            steps=steps,
            seed=seed,
            optim=optim,
            net=build_net(seed, net, encoder, log=_quiet),
            eval_every=every,
            eval_sets=sets,
            progress=progress,
            log_dir=folder / LOGS,
        )
        curve = hist.melt(id_vars=["step", "seconds"], var_name="probe", value_name="accuracy")
        save_weights(module.net, folder)
        _write_table(curve.to_dict("records"), folder)

    folder = cached("icl_emergence", key, build, code=_code(), log=log)
    trained, rows = _load(folder, build_net(seed, net, encoder, log=_quiet))
    return pd.DataFrame(rows), trained


def tradeoff_cell(
    n_classes: int,
    burstiness: float,
    symbol_share: float = 0.0,
    zipf: float = 0.0,
    steps: int = 300,
    seed: int = 0,
    encoder: DigitEncoderConfig | dict | None = None,
    optim: OptimConfig | dict | None = None,
    eval_n: int = 600,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """One cell of Chan et al.'s trade-off: train on fixed class words (labels re-drawn from the wrong
    words in the bursty share), measure in-context accuracy (held-out images, re-drawn wrong words,
    2-way: chance 0.5) and in-weights accuracy (fixed words, no demonstration of the query class).

    The encoder is pretrained on all 80 classes (digits x rotations/flips) unless `encoder` is given.
    Returns n_classes, burstiness, icl_acc, iwl_acc, seconds (training and the two evaluations).
    """
    encoder = config(DigitEncoderConfig, encoder if encoder is not None else {"n_classes": MAX_CLASSES})
    optim = config(OptimConfig, optim)
    data = EpisodeConfig(
        n_classes=n_classes, burstiness=burstiness, symbol_share=symbol_share, redraw_from="words", zipf=zipf
    )
    key = {
        "data": asdict(data),
        "steps": steps,
        "seed": seed,
        "encoder": asdict(encoder),
        "optim": asdict(optim),
        "eval_n": eval_n,
    }

    def build(folder: Path) -> None:
        from studio.models.icl_module import train_icl

        icl = eval_batch(icl_eval_config(n_classes=n_classes, redraw_from="words"), n=eval_n)
        iwl = eval_batch(iwl_eval_config(n_classes=n_classes), n=eval_n)
        t0 = time.perf_counter()
        module, _ = train_icl(
            data,
            steps=steps,
            seed=seed,
            optim=optim,
            net=build_net(seed, encoder=encoder, log=_quiet),
            progress=progress,
            log_dir=folder / LOGS,
        )
        row = {
            "n_classes": n_classes,
            "burstiness": burstiness,
            "icl_acc": accuracy(module.net, icl),
            "iwl_acc": accuracy(module.net, iwl),
            "seconds": time.perf_counter() - t0,
        }
        save_weights(module.net, folder)
        _write_table([row], folder)

    folder = cached("icl_tradeoff_cell", key, build, code=_code(), log=log)
    return load_checked(folder, _read_table)[0]


def _eval_batches(cfg: SymDPOConfig) -> dict[str, dict]:
    return {k: eval_batch(c, n=cfg.eval_n, seed=4242) for k, c in eval_sets().items()}


def symdpo_baseline(
    cfg: SymDPOConfig | dict | None = None, seed: int = 0, log: Callable[[str], None] = print
) -> tuple[nn.Module, list[dict]]:
    """The SymDPO baseline of one seed and its rows (seed, arm "baseline", stage "before", eval,
    accuracy, acc_blanked, acc_removed, reliance, text_only_ratio, seconds of training)."""
    cfg = config(SymDPOConfig, cfg)
    key = {"seed": seed, **{f: getattr(cfg, f) for f in BASELINE_FIELDS}}

    def build(folder: Path) -> None:
        t0 = time.perf_counter()
        base = train_baseline(cfg, seed, log_dir=folder / LOGS)
        sec = time.perf_counter() - t0
        save_weights(base, folder)
        _write_table(
            [
                {"seed": seed, "arm": "baseline", "stage": "before", **r, "seconds": sec}
                for r in measure(base, _eval_batches(cfg))
            ],
            folder,
        )

    folder = cached("icl_symdpo_baseline", key, build, code=_code(), log=log)
    return _load(folder, build_net(seed, log=_quiet))


def symdpo_arm(
    cfg: SymDPOConfig | dict | None, arm: str, seed: int = 0, log: Callable[[str], None] = print
) -> tuple[nn.Module, list[dict]]:
    """The baseline of `seed` fine-tuned by `arm`, and its rows (stage "after", seconds of fine-tuning)."""
    cfg = config(SymDPOConfig, cfg)
    key = {"seed": seed, "arm": arm, **{k: v for k, v in asdict(cfg).items() if k != "arms"}}

    def build(folder: Path) -> None:
        base, _ = symdpo_baseline(cfg, seed, log=log)
        t0 = time.perf_counter()
        tuned = finetune(base, arm, cfg, seed, log_dir=folder / LOGS).net
        sec = time.perf_counter() - t0
        save_weights(tuned, folder)
        _write_table(
            [
                {"seed": seed, "arm": arm, "stage": "after", **r, "seconds": sec}
                for r in measure(tuned, _eval_batches(cfg))
            ],
            folder,
        )

    folder = cached("icl_symdpo_arm", key, build, code=_code(), log=log)
    return _load(folder, build_net(seed, log=_quiet))
