"""Lightning's overhead on the visual-context engine, and where a step's time goes.

Trains the same VideoLM (same init, same batches, same optimizer and schedule) for --steps steps
twice: with Lightning's Trainer (as train_cell does) and with a plain PyTorch loop. Prints steps/s of
each and their ratio (target: Lightning within 5 %), the share of step time spent making data
(gathering frozen features from the cached bank; and, for comparison, rendering the sampled frames of
fresh videos and encoding them), and peak memory.

    .venv/bin/python benchmarks/bench_engine.py                 # default cell (T=4, M=4), 200 steps
    .venv/bin/python benchmarks/bench_engine.py --frames 16 --tokens 4 --steps 100 --small

--small uses a 512-video bank (built in seconds) instead of the default 6,000-video one.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20, help="steps not timed")
    ap.add_argument("--repeats", type=int, default=2, help="alternate Lightning and plain runs this many times")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()

    import lightning as L

    from studio.data.video import make_batch
    from studio.data.vocab import answer_ids
    from studio.engine import CellConfig, _TrainBatches, build_module, uniform_frames
    from studio.models.frame_encoder import feature_bank, pretrained_frame_encoder
    from studio.models.selection import FrameSelector
    from studio.repro import seed_everything
    from studio.training import make_trainer

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    over = dict(frames=args.frames, tokens_per_frame=args.tokens, steps=args.steps)
    if args.small:
        over.update(train_videos=512, val_videos=64)
    cfg = CellConfig.from_dict(over)
    bank = feature_bank(cfg.encoder(), cfg.video(), cfg.train_videos, cfg.val_videos, cfg.data_seed)
    train = bank["train"]
    data = _TrainBatches(
        train, answer_ids(train["task"], train["answer"]), cfg.batch_size, cfg.seed, frames=uniform_frames(cfg)
    )
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Time to make one batch from the bank (what a training step waits for).
    t0 = time.perf_counter()
    for i in range(args.steps):
        data[i]
    t_bank = (time.perf_counter() - t0) / args.steps

    # For comparison: render fresh videos (only the T sampled frames) and encode them with the frozen encoder.
    enc = pretrained_frame_encoder(cfg.encoder(), log=lambda *_: None)
    fr = FrameSelector("uniform", cfg.frames, cfg.raw_frames).centres.numpy()
    n_render = 10
    t0 = time.perf_counter()
    for i in range(n_render):
        b = make_batch(cfg.video(), range(i * cfg.batch_size, (i + 1) * cfg.batch_size), frames=fr)
    t_render = (time.perf_counter() - t0) / n_render
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_render):
            enc(torch.from_numpy(b["video"]).reshape(-1, 1, cfg.frame_size, cfg.frame_size))
    t_encode = (time.perf_counter() - t0) / n_render

    def fresh():
        seed_everything(cfg.seed)
        return build_module(cfg, cfg.encoder().feature_dim, cfg.encoder().grid)

    def plain() -> float:
        m = fresh()
        m.train()
        conf = m.configure_optimizers()
        opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
        for i in range(args.steps):
            if i == args.warmup:
                t0 = time.perf_counter()
            b = data[i]  # made inside the loop, as Lightning's DataLoader does
            loss = torch.nn.functional.cross_entropy(m(b), b["answer_id"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        return (args.steps - args.warmup) / (time.perf_counter() - t0)

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            if trainer.global_step == args.warmup:
                self.t0 = time.perf_counter()

        def on_train_end(self, trainer, module):
            self.rate = (trainer.global_step - args.warmup) / (time.perf_counter() - self.t0)

    def lightning() -> float:
        m = fresh()
        clock = Clock()
        loader = torch.utils.data.DataLoader(data, batch_size=None, sampler=range(args.steps))
        # the workbench's Trainer (its fixed flags: one device, no logger, checkpoints, bar or summary)
        trainer = make_trainer(max_steps=args.steps, limit_val_batches=0, callbacks=[clock], deterministic=True)
        trainer.fit(m, loader)
        return clock.rate

    rates = {"lightning": [], "plain": []}
    for _ in range(args.repeats):  # alternate, so that load changes on a shared machine hit both
        rates["lightning"].append(lightning())
        rates["plain"].append(plain())
    lit, pla = max(rates["lightning"]), max(rates["plain"])  # best of repeats: least disturbed by load
    step_s = 1.0 / pla
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_params = sum(p.numel() for p in fresh().parameters() if p.requires_grad)
    print(
        f"cell T={cfg.frames} M={cfg.tokens_per_frame} ({cfg.frames * cfg.tokens_per_frame} visual tokens), "
        f"batch {cfg.batch_size}, width {cfg.width}, {n_params:,} trainable parameters, {torch.get_num_threads()} thread(s)"
    )
    print(f"plain PyTorch loop : {pla:7.1f} steps/s  (runs: {', '.join(f'{r:.1f}' for r in rates['plain'])})")
    print(f"Lightning Trainer  : {lit:7.1f} steps/s  (runs: {', '.join(f'{r:.1f}' for r in rates['lightning'])})")
    print(f"Lightning / plain  : {lit / pla:.3f}  -> overhead {100 * (1 - lit / pla):+.1f} % (target <= 5 %)")
    print(
        f"data from the feature bank : {1e3 * t_bank:6.2f} ms per batch = {100 * t_bank / step_s:5.1f} % of a plain step ({1e3 * step_s:.1f} ms)"
    )
    print(
        f"render {len(fr)} sampled frames x {cfg.batch_size} fresh videos: {1e3 * t_render:6.2f} ms "
        f"({100 * t_render / step_s:.0f} % of a step); encoding them with the frozen CNN: {1e3 * t_encode:.2f} ms"
    )
    print(
        f"peak memory (max RSS): {rss / 1024:.0f} MiB (the bank memmap and batches: +{(rss - rss0) / 1024:.0f} MiB "
        f"after loading); feature bank on disk {train['features'].nbytes / 2**20:.0f} MiB"
    )
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
