"""save_figure / save_table: files written, bytes stable, wall-clock columns left out, bad input refused."""

import json

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from studio.figures import figure, save_figure, save_table  # noqa: E402


def _plot(data):
    fig, ax = figure()
    ax.plot(data["x"], data["y"])
    return fig


def test_save_figure_writes_png_pdf_csv_and_same_data_gives_same_bytes(tmp_path):
    data = pd.DataFrame({"x": [1, 2, 3], "y": [0.1, 0.2, 1 / 3], "seconds": [1.2, 3.4, 5.6]})
    written = save_figure(_plot(data), "demo_curve", data, caption="a demo", out_dir=tmp_path / "a")
    again = save_figure(_plot(data.assign(seconds=[9.0, 9.0, 9.0])), "demo_curve", data, out_dir=tmp_path / "b")
    for ext in ("png", "pdf", "csv"):
        assert written[ext].stat().st_size > 0
    assert written["csv"].read_text() == "x,y\n1,0.1\n2,0.2\n3,0.333333\n"  # no wall clock, 6 digits
    assert written["csv"].read_bytes() == again["csv"].read_bytes()
    assert written["pdf"].read_bytes() == again["pdf"].read_bytes()  # no timestamps in the PDF
    index = json.loads((tmp_path / "a" / "figures.json").read_text())
    assert index == {"demo_curve": {"caption": "a demo", "kind": "figure"}}
    assert repr(written).startswith("saved ")


def test_save_table_and_refusals(tmp_path):
    path = save_table(pd.DataFrame({"a": [1]}), "demo_table", out_dir=tmp_path)
    assert path.read_text() == "a\n1\n"
    assert json.loads((tmp_path / "figures.json").read_text())["demo_table"]["kind"] == "table"
    fig = _plot(pd.DataFrame({"x": [1], "y": [1]}))
    with pytest.raises(ValueError, match="lower-case"):
        save_figure(fig, "Bad Name", pd.DataFrame({"x": [1]}), out_dir=tmp_path)
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        save_figure(fig, "empty", pd.DataFrame(), out_dir=tmp_path)


def test_tolerance_helpers_read_intervals_seed_ranges_and_bootstrap_widths():
    import numpy as np
    import pandas as pd

    from studio import tolerance

    est = pd.DataFrame({"reliance": [0.2], "reliance_ci_low": [0.1], "reliance_ci_high": [0.3], "acc": [0.9]})
    iv = {"interval": ["reliance_ci_low", "reliance_ci_high"]}
    assert tolerance.intervals(est) == {"reliance": iv, "reliance_ci_low": iv, "reliance_ci_high": iv}
    assert tolerance.allowed(iv, est) == pytest.approx([0.1])
    per_seed = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "acc": [0.5, 0.6, 0.7, 0.75]})
    assert tolerance.seed_range(per_seed, ["arm"]) == {"acc": pytest.approx(0.1)}  # arm a's range, not b's
    boot = pd.DataFrame({"alpha": np.linspace(0, 1, 1001), "converged": True})
    assert tolerance.percentile_half_width(boot) == {"alpha": pytest.approx(0.475)}  # (0.975 - 0.025) / 2


def test_save_figure_refuses_small_text_and_overlapping_ticks(tmp_path):
    from studio.figures import figure, legibility_problems, save_figure

    data = pd.DataFrame({"x": [1, 2]})
    fig, ax = figure()
    ax.plot([0, 1], [0, 1], label="a line")
    ax.legend(fontsize=5)
    with pytest.raises(ValueError, match=r"hard to read: text 'a line' is 5.0 pt"):
        save_figure(fig, "small", data, out_dir=tmp_path)
    assert not (tmp_path / "small.png").exists()  # refused before anything was written
    fig, ax = figure()
    ax.set_xticks(range(6), labels=[f"a long tick label {i}" for i in range(6)])
    assert any("overlap" in p for p in legibility_problems(fig))
    fig, ax = figure()
    ax.plot([0, 1], [0, 1], label="fine")
    ax.legend(fontsize=7)
    assert legibility_problems(fig) == []
    save_figure(fig, "fine", data, out_dir=tmp_path)
    assert (tmp_path / "fine.png").exists()
