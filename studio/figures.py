"""The one plotting style of the project and `save_figure`, the only way figures leave a notebook.

`save_figure(fig, name, data)` writes NAME.png, NAME.pdf and NAME.csv (the data behind the figure)
into the current run's figures/ folder (see `paths.figure_output_dir`), and records a one-line
caption. `studio figures` later copies them into figures/ and writes figures/MANIFEST.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.text
import pandas as pd
import seaborn as sns

from studio import paths
from studio.repro import atomic_write_text
from studio.tolerance import Tolerance
from studio.tolerance import normalise as normalise_tolerance

# Okabe-Ito: distinguishable under the common colour-vision deficiencies and in greyscale print.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SEQUENTIAL = "viridis"  # perceptually uniform, colour-blind safe, for heatmaps and contours
COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
PAGE_WIDTH = 7.0
CSV_FLOAT_FORMAT = "%.6g"  # rounding keeps the byte-for-byte check robust to last-bit noise
INDEX_FILE = "figures.json"
# Wall-clock columns differ from run to run on the same seed. They stay in provenance.json and in a
# sweep's results.csv; figure data leaves them out so that `studio figures --check` compares only
# what was computed.
WALL_CLOCK_COLUMNS = ("seconds", "wall_s", "train_time_s", "pretrain_seconds", "wall_time_s")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def use_style() -> None:
    """Apply the project style (idempotent). Notebooks call it once; save_figure does not restyle."""
    sns.set_theme(context="paper", style="ticks", palette=PALETTE, font_scale=1.0)
    matplotlib.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "image.cmap": SEQUENTIAL,
            "pdf.fonttype": 42,  # editable text in the PDF
            "svg.hashsalt": "studio",
        }
    )


def figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None, aspect: float = 0.75, **kw):
    """plt.subplots sized for the paper: one column wide for a single panel, a page for several."""
    use_style()
    width = width or (COLUMN_WIDTH if ncols == 1 else PAGE_WIDTH)
    height = width / ncols * aspect * nrows
    return plt.subplots(nrows, ncols, figsize=(width, height), constrained_layout=True, **kw)


class Saved(dict):
    """The files save_figure wrote ({"png": Path, ...}); shows as one short line in a notebook."""

    def __repr__(self):
        return "saved " + ", ".join(paths.relative(p) for p in self.values())

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


MIN_FONT_PT = 7.0  # the smallest text a printed figure stays legible at (journal guides ask 6-8 pt)


def legibility_problems(fig) -> list[str]:
    """What makes `fig` hard to read: visible text under MIN_FONT_PT, and tick labels of one axis that
    overlap each other. Empty when the figure is fine. Checked by save_figure so no figure regresses."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT_PT - 1e-9:
            problems.append(
                f"text {text.get_text().strip()[:40]!r} is {text.get_fontsize():.1f} pt (< {MIN_FONT_PT:g})"
            )
    for ax in fig.axes:
        for axis_name, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            boxes = [
                (t.get_text(), t.get_window_extent(renderer))
                for t in labels
                if t.get_visible() and t.get_text().strip()
            ]
            for (a, ba), (b, bb) in zip(boxes, boxes[1:]):
                inter_w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
                inter_h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
                if inter_w > 0.5 and inter_h > 0.5:  # pixels: touching edges are fine
                    title = ax.get_title() or ax.get_xlabel() or ax.get_ylabel()
                    problems.append(f"{axis_name} tick labels {a!r} and {b!r} overlap (axes {title[:30]!r})")
                    break
    return sorted(set(problems))


def save_figure(
    fig, name: str, data: pd.DataFrame, caption: str = "", *, out_dir=None, tolerance: Tolerance | None = None
) -> dict:
    """Save `fig` as NAME.png and NAME.pdf and `data` (what the figure shows) as NAME.csv.

    Wall-clock columns (WALL_CLOCK_COLUMNS) are left out of the CSV: the same seed must give the
    same bytes.

    `caption` is one sentence on what the figure shows; it goes into the MANIFEST and the README
    gallery. `tolerance`: {column: the largest difference that is noise}, usually the seed spread the
    study measured (per column, per group of rows or per row's own interval: studio.tolerance);
    `studio figures --check` calls a rerun whose numbers move less than that, with the same verdicts,
    "within spread" instead of "changed". Returns the paths written.
    """
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r}: use lower-case letters, digits, '_' and '-'")
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise ValueError(f"figure {name!r}: data must be a non-empty DataFrame (what the figure shows)")
    problems = legibility_problems(fig)
    if problems:
        raise ValueError(f"figure {name!r} is hard to read: " + "; ".join(problems[:6]))
    out = Path(out_dir) if out_dir is not None else paths.figure_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    written = Saved(
        {
            "png": out / f"{name}.png",
            "pdf": out / f"{name}.pdf",
            "csv": out / f"{name}.csv",
        }
    )
    # No timestamps in the files: the same data gives the same bytes.
    fig.savefig(written["png"], metadata={"Software": None})
    fig.savefig(written["pdf"], metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    atomic_write_text(written["csv"], _csv(data))
    _record(out, name, caption, kind="figure", tolerance=normalise_tolerance(name, data, tolerance))
    return written


def save_table(
    data: pd.DataFrame,
    name: str,
    caption: str = "",
    *,
    out_dir=None,
    kind: str = "table",
    tolerance: Tolerance | None = None,
) -> Path:
    """Save a results table (NAME.csv) that other notebooks read, tracked in the MANIFEST like a figure."""
    if not _NAME.match(name):
        raise ValueError(f"table name {name!r}: use lower-case letters, digits, '_' and '-'")
    out = Path(out_dir) if out_dir is not None else paths.figure_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.csv"
    atomic_write_text(path, _csv(data))
    _record(out, name, caption, kind=kind, tolerance=normalise_tolerance(name, data, tolerance))
    return path


def _csv(data: pd.DataFrame) -> str:
    """The bytes of a figure's data: wall-clock columns dropped, floats rounded, fixed line ends."""
    data = data.drop(columns=[c for c in WALL_CLOCK_COLUMNS if c in data.columns])
    return data.to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")


def _record(out: Path, name: str, caption: str, kind: str, tolerance: dict | None = None) -> None:
    tolerance = {c: v for c, v in (tolerance or {}).items() if c not in WALL_CLOCK_COLUMNS}  # not in the CSV
    index_path = out / INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[name] = {"caption": caption, "kind": kind, **({"tolerance": tolerance} if tolerance else {})}
    atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
