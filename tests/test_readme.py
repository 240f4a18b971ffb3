"""The README gallery is written from figures/MANIFEST and lists every figure in it."""

from __future__ import annotations

import pytest

from studio import paths
from studio.workbench.readme import END, START, gallery_section, remake_command, render, update_readme

MANIFEST = {
    "demo_curve": {
        "kind": "figure",
        "caption": "Accuracy against tokens",
        "notebook": "notebooks/demo.ipynb",
        "profile": "default",
        "files": ["figures/demo_curve.png", "figures/demo_curve.pdf"],
    },
    "demo_results": {
        "kind": "table",
        "caption": "per-seed results",
        "notebook": "notebooks/demo.ipynb",
        "profile": "default",
        "files": ["figures/demo_results.csv"],
    },
    "alpha_map": {
        "kind": "figure",
        "caption": "A heatmap.",
        "notebook": "notebooks/alpha.ipynb",
        "profile": "paper",
        "files": ["figures/alpha_map.png"],
    },
}
README = f"# title\n\nintro\n\n## Gallery\n\n{START}\nold stuff\n{END}\n\n## After\n\nkept\n"


def test_gallery_lists_figures_grouped_by_notebook_and_leaves_the_rest(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert update_readme(readme, MANIFEST) is True
    text = readme.read_text()
    assert text.startswith("# title\n\nintro\n\n## Gallery\n\n" + START)
    assert text.endswith(END + "\n\n## After\n\nkept\n")
    gallery = gallery_section(text)
    assert "old stuff" not in gallery
    assert "![Accuracy against tokens.](figures/demo_curve.png)" in gallery
    assert "`studio figures --only demo`" in gallery
    assert "`studio figures --only alpha --profile paper`" in gallery
    assert "demo_results" not in gallery  # tables are not figures
    assert gallery.index("### alpha") < gallery.index("### demo")  # grouped, notebooks sorted
    assert update_readme(readme, MANIFEST) is False  # idempotent
    assert update_readme(readme, {}, check=True) is True and readme.read_text() == text  # check writes nothing


def test_missing_markers_are_refused():
    with pytest.raises(ValueError, match="gallery markers"):
        render("# no gallery here\n", MANIFEST)


def test_remake_command():
    assert (
        remake_command({"notebook": "notebooks/scaling_laws.ipynb", "profile": None})
        == "studio figures --only scaling_laws"
    )


def test_readme_gallery_lists_every_figure_in_the_manifest():
    from studio.workbench.manifest import read_manifest

    if not paths.MANIFEST.exists():
        pytest.skip("no figures/MANIFEST yet (make figures writes it)")
    manifest = read_manifest()
    gallery = gallery_section((paths.ROOT / "README.md").read_text())
    missing = [
        name
        for name, e in manifest.items()
        if e.get("kind", "figure") == "figure"
        and (f"**{name}**" not in gallery or not any(f in gallery for f in e.get("files", []) if f.endswith(".png")))
    ]
    assert not missing, (
        f"README gallery lacks {missing}: run `.venv/bin/python -m studio.workbench.readme` after `make figures`"
    )
    for name, e in manifest.items():
        for f in e.get("files", []):
            assert (paths.ROOT / f).exists(), f"{name}: {f} is in the MANIFEST but not in the repository"
