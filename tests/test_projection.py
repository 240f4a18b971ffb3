"""The projection helpers with the PCA stand-in (UMAP stays out of unit tests: numba compiles ~1 min)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from studio.analysis import projection


def _groups(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(40, 12))
    v[:, 0] += 4
    t = rng.normal(size=(30, 12))
    t[:, 0] -= 4
    return {"visual": v, "text": t}


def test_pca_projection_is_joint_and_reproducible():
    groups = _groups()
    labels = {"text": {"caption": ["faithful"] * 15 + ["hallucinated"] * 15}}
    proj = projection.project(groups, method="pca", seed=0, labels=labels)
    assert len(proj) == 70 and {"group", "index", "x", "y", "caption"} <= set(proj.columns)
    assert proj.groupby("group")["index"].max().to_dict() == {"text": 29, "visual": 39}
    assert proj.loc[proj.group == "visual", "caption"].isna().all()
    # the two cones separate along the first axis
    mx = proj.groupby("group")["x"].mean()
    assert abs(mx["visual"] - mx["text"]) > 1.0
    pd.testing.assert_frame_equal(proj, projection.project(groups, method="pca", seed=0, labels=labels))
    assert "umap" not in sys.modules  # the stand-in never imports umap


def test_project_refuses_bad_input():
    groups = _groups()
    with pytest.raises(ValueError, match="method"):
        projection.project(groups, method="tsne")
    with pytest.raises(ValueError, match="dimension"):
        projection.project({"a": np.zeros((3, 2)), "b": np.zeros((3, 4))}, method="pca")
    with pytest.raises(ValueError, match="values"):
        projection.project(groups, method="pca", labels={"text": {"caption": ["x"]}})
    with pytest.raises(ValueError, match="unknown group"):
        projection.project(groups, method="pca", labels={"image": {"c": [1]}})


def test_plot_projection(tmp_path):
    from studio.figures import save_figure

    groups = _groups()
    proj = projection.project(groups, method="pca", labels={"text": {"caption": ["faithful", "hallucinated"] * 15}})
    fig, axes = projection.plot_projection(proj, hues=("group", "caption"))
    assert len(axes) == 2
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert labels == ["no caption", "faithful", "hallucinated"]
    written = save_figure(fig, "test_projection", proj, caption="test", out_dir=tmp_path)
    assert written["png"].stat().st_size > 1000
    with pytest.raises(ValueError, match="hue"):
        projection.plot_projection(proj, hues=("nope",))
