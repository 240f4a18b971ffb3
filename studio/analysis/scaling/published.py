"""Published reference numbers for the Chinchilla law (the only copy in the project).

Notebooks, tests, benchmarks and the scaling_laws study read them from here (`studio.scaling.PUBLISHED`).
"""

from __future__ import annotations

PUBLISHED: dict[str, dict] = {
    "hoffmann": {
        "label": "Hoffmann et al. (2022)",
        "source": "Hoffmann et al. 2022, arXiv:2203.15556, approach 3 (Eq. 10)",
        "law": "additive",
        "params": {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28},
    },
    "epoch_grid": {
        "label": "Epoch AI, Huber grid fit",
        "source": "Besiroglu et al. 2024, arXiv:2404.10102: 4,500-start L-BFGS-B on 240 digitised points",
        "law": "additive",
        "objective": 1.0183e-3,
        "params": {"E": 1.8172, "A": 477.8, "alpha": 0.3473, "B": 2143.0, "beta": 0.3672},
    },
    "epoch": {
        "label": "Epoch AI (2024)",
        "source": "Besiroglu et al. 2024, arXiv:2404.10102: headline estimates, 4,000-resample bootstrap CIs",
        "law": "additive",
        "params": {"E": 1.8169, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3659},
        "ci95": {"E": (1.769, 1.871), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)},
    },
}
