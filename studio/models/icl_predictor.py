"""The tiny ICL model as a studio.icl predictor: list[Episode] -> list[str] answers.

predictor = as_predictor(net, seed=0)
icl.probe(predictor, icl.digit_episodes(1000, symbols=True))
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from studio.models.icl_vocab import IMAGE_PIXELS, VOCAB, Vocab


def _pixels(image) -> np.ndarray | None:
    if image is None:
        return None
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:  # colour or channel axis: average it away
        x = x.mean(axis=-1) if x.shape[-1] in (1, 3, 4) else x.mean(axis=0)
    if x.size != IMAGE_PIXELS:
        raise ValueError(f"the tiny ICL model reads 8x8 digit images; got an image of shape {np.shape(image)}")
    if x.max() > 1.5:  # 0..16 or 0..255 scaled images
        x = x / (16.0 if x.max() <= 16 else 255.0)
    return x.reshape(IMAGE_PIXELS)


def as_predictor(net: nn.Module, seed: int = 0, restrict: bool = True, vocab: Vocab = VOCAB):
    """A studio.icl predictor: list[Episode] -> list[str].

    Words known to the vocabulary map to their tokens; any other answer string (a symbol) maps to a
    symbol token drawn per episode (the same string -> the same token within the episode). The answer
    is the argmax over the episode's candidates (`Episode.candidates`, else its demonstration answers).
    Demonstrations with image None get the learned "no image" embedding.
    """
    net = getattr(net, "net", net)  # accept the LightningModule too

    def predict(episodes) -> list[str]:
        rng = np.random.default_rng(seed)
        out = [None] * len(episodes)
        groups: dict[int, list[int]] = {}
        for i, ep in enumerate(episodes):
            groups.setdefault(len(ep.demos), []).append(i)
        for s, idx in groups.items():
            imgs = np.zeros((len(idx), s + 1, IMAGE_PIXELS), np.float32)
            present = np.ones((len(idx), s + 1), bool)
            answers = np.zeros((len(idx), s), np.int64)
            cand_tokens, cand_strings = [], []
            for row, i in enumerate(idx):
                ep = episodes[i]
                symbols = iter(rng.permutation(vocab.n_symbols) + vocab.n_words)
                table: dict[str, int] = {}

                def tok(a, table=table, symbols=symbols):  # this episode's answer -> token table
                    if a not in table:
                        table[a] = (
                            vocab.index[a] if a in vocab.index and vocab.index[a] < vocab.n_words else next(symbols)
                        )
                    return table[a]

                for j, shot in enumerate([*ep.demos, ep.query]):
                    px = _pixels(shot.image)
                    if px is None:
                        present[row, j] = False
                    else:
                        imgs[row, j] = px
                for j, shot in enumerate(ep.demos):
                    answers[row, j] = tok(str(shot.answer))
                cands = getattr(ep, "candidates", None) or list(dict.fromkeys(str(d.answer) for d in ep.demos))
                cands = [str(c) for c in cands]
                cand_strings.append(cands)
                cand_tokens.append([tok(c) for c in cands])
            with torch.no_grad():
                was = net.training
                net.eval()
                dev = next(net.parameters()).device
                logits = net(*(torch.from_numpy(a).to(dev) for a in (imgs, present, answers))).cpu()
                net.train(was)
            for row, i in enumerate(idx):
                if restrict and cand_tokens[row]:
                    k = int(torch.argmax(logits[row, cand_tokens[row]]))
                    out[i] = cand_strings[row][k]
                else:
                    t = int(logits[row].argmax())
                    back = {v: k for k, v in zip(cand_strings[row], cand_tokens[row])}
                    out[i] = back.get(t, vocab.tokens[t])
        return out

    predict.__name__ = "tiny_icl_model"
    return predict
