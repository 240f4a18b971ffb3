"""`studio figures` publishes a notebook's files and the MANIFEST as one step, and --check verifies
every published file (CSV, PNG, PDF) against the sha256 the MANIFEST records (issue 27, items 7 and 8).

No notebook runs here: a run is a fake RunResult (a run folder with figures.json and the files
save_figure would write), handed to the real publish, recovery and `run_figures` code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from studio import paths
from studio.figures import INDEX_FILE
from studio.repro import sha256_file
from studio.workbench import manifest, regenerate
from studio.workbench.readme import update_readme

NOTEBOOK = "notebooks/demo.ipynb"
README = "# t\n<!-- gallery:start -->\n<!-- gallery:end -->\n"


def _point_at(monkeypatch, root: Path) -> None:
    """The workbench's project root, figures/ and README, as the `project` fixture of test_runner does."""
    monkeypatch.setattr(paths, "ROOT", root)
    monkeypatch.setattr(paths, "FIGURES", root / "figures")
    monkeypatch.setattr(paths, "MANIFEST", root / "figures" / "MANIFEST")
    monkeypatch.setattr(paths, "README", root / "README.md")


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    (root / "README.md").write_text(README)
    _point_at(monkeypatch, root)
    return root


def fake_run(folder: Path, tag: str, figures: dict[str, dict]) -> SimpleNamespace:
    """A successful run of notebooks/demo.ipynb whose figures/ holds `figures`:
    {name: {"kind", "csv", optional "png"/"pdf" bytes}}, as save_figure and save_table leave them."""
    run_dir = folder / "runs" / "demo" / tag
    out = run_dir / "figures"
    out.mkdir(parents=True)
    index = {}
    for name, spec in figures.items():
        (out / f"{name}.csv").write_text(spec["csv"])
        for ext in ("png", "pdf"):
            if ext in spec:
                (out / f"{name}.{ext}").write_bytes(spec[ext])
        index[name] = {"caption": f"{name} caption", "kind": spec.get("kind", "figure")}
    (out / INDEX_FILE).write_text(json.dumps(index))
    return SimpleNamespace(
        figures_dir=out,
        run_dir=run_dir,
        provenance={"notebook": NOTEBOOK, "git": {"commit": "0" * 40, "dirty": False}},
        profile="default",
        params_hash="abcd1234",
        params={"seed": 0},
    )


def _figure(csv: str, image: str) -> dict:
    """A figure's files; `image` tells its PNG and PDF bytes apart from another render's."""
    return {"csv": csv, "png": b"\x89PNG " + image.encode(), "pdf": b"%PDF-1.4 " + image.encode()}


def publish(result) -> None:
    with manifest.updating() as entries:
        manifest.publish(result, entries)


def check(monkeypatch, result, *, publish_instead=False) -> tuple[int, list[str]]:
    """`studio figures [--check] --jobs 1` over the one notebook demo, whose run gives `result`."""
    spec = SimpleNamespace(name="demo", path=paths.ROOT / NOTEBOOK, after=[])
    monkeypatch.setattr(regenerate, "figure_notebooks", lambda only=None: [spec])
    monkeypatch.setattr(regenerate, "resolve", lambda spec, profile: None)
    monkeypatch.setattr(regenerate, "_run", lambda path, profile: result)
    lines: list[str] = []
    code = regenerate.run_figures("default", check=not publish_instead, jobs=1, echo=lines.append)
    return code, lines


def _consistent() -> None:
    """Every MANIFEST entry's files are on disk with the sha256 it records, and nothing is staged."""
    entries = manifest.read_manifest()
    for name, entry in entries.items():
        assert manifest.integrity(name, entry) == [], name
        assert entry["csv_sha256"] == sha256_file(paths.FIGURES / f"{name}.csv")
    assert manifest.interrupted() is None


# --- item 7: a kill between the files and the MANIFEST ------------------------------------------------

# Forked from one process that imported the workbench once (it loads no torch, so fork is safe):
# each child publishes run B over a copy of a figures/ that holds run A, and SIGKILLs itself at its
# k-th rename or unlink, for every k until a child gets through. What it was killed at goes beside.
_KILLER = textwrap.dedent(
    """
    import json, os, shutil, signal, sys
    from pathlib import Path
    from types import SimpleNamespace
    from studio import paths
    from studio.workbench import manifest

    template, out, spec = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
    result = SimpleNamespace(**spec)
    result.figures_dir, result.run_dir = Path(spec["figures_dir"]), Path(spec["run_dir"])
    real = {"replace": os.replace, "unlink": os.unlink}
    k = 0
    while k < 200:
        root = out / f"kill{k:03d}"
        shutil.copytree(template, root)
        pid = os.fork()
        if pid == 0:
            paths.ROOT, paths.FIGURES, paths.MANIFEST = root, root / "figures", root / "figures" / "MANIFEST"
            calls = [0]

            def hook(fn):
                def call(*args, **kw):
                    if calls[0] == k:
                        (root / "killed_at").write_text(f"{fn} {args[-1]}")
                        os.kill(os.getpid(), signal.SIGKILL)
                    calls[0] += 1
                    return real[fn](*args, **kw)
                return call

            os.replace, os.unlink = hook("replace"), hook("unlink")
            with manifest.updating() as entries:
                manifest.publish(result, entries)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            shutil.rmtree(root)
            sys.exit(os.WEXITSTATUS(status))
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        k += 1
    sys.exit(3)
    """
)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Run A published, run B's publish over it killed at each point in turn: {folder: what it was
    killed at}, the runs, and the MANIFEST texts of A alone and of B published over A."""
    base = tmp_path_factory.mktemp("killed")
    a = fake_run(
        base,
        "a",
        {
            "demo_plot": _figure("x\n1\n", "a"),
            "demo_old": _figure("y\n1\n", "old"),  # B no longer makes it: its files go
            "demo_table": {"csv": "t\n1\n", "kind": "table"},
        },
    )
    b = fake_run(base, "b", {"demo_plot": _figure("x\n2\n", "b"), "demo_table": {"csv": "t\n2\n", "kind": "table"}})
    template, clean = base / "template", base / "clean"
    with pytest.MonkeyPatch.context() as mp:
        template.mkdir()
        (template / "README.md").write_text(README)
        _point_at(mp, template)
        publish(a)
        update_readme()
        shutil.copytree(template, clean)
        _point_at(mp, clean)
        publish(b)
    spec = base / "b.json"
    spec.write_text(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(b).items()}))
    env = dict(os.environ, MPLBACKEND="Agg")
    out = base / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(template), str(out), str(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    folders = sorted(out.iterdir())
    return SimpleNamespace(
        folders={f: (f / "killed_at").read_text() for f in folders},
        a=a,
        b=b,
        old=(template / "figures" / "MANIFEST").read_text(),
        new=(clean / "figures" / "MANIFEST").read_text(),
    )


def _copy(folder: Path, tmp_path: Path) -> Path:
    """A scenario folder of one's own: the scenarios are shared by the tests of this module."""
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def test_a_kill_at_any_point_of_a_publish_leaves_one_set_or_a_named_interrupted_publish(
    scenarios, tmp_path, monkeypatch
):
    assert len(scenarios.folders) >= 6  # killed at each staged write, the commit, each rename, each unlink
    hit = {at.split()[0] + " " + Path(at.split()[1]).name for at in scenarios.folders.values()}
    assert "replace MANIFEST" in hit  # among them: after the CSVs are renamed, before the MANIFEST is
    for folder, at in scenarios.folders.items():
        _point_at(monkeypatch, _copy(folder, tmp_path))
        pending = manifest.interrupted()
        text = paths.MANIFEST.read_text()
        if pending is None:  # before the commit point (old set) or after the last rename (new set)
            assert text in (scenarios.old, scenarios.new), at
            _consistent()
            run = scenarios.a if text == scenarios.old else scenarios.b
            assert all(s == manifest.IDENTICAL for _, s, _ in manifest.compare(run, manifest.read_manifest())), at
        else:  # between: --check names the interrupted publish, never an edit
            assert pending["notebook"] == NOTEBOOK and text == scenarios.old, at
            found = manifest.compare(scenarios.b, manifest.read_manifest(), pending)
            assert {n for n, _, _ in found} >= {"demo_plot", "demo_table"}, at
            assert all(s == manifest.CHANGED and "interrupted" in d for _, s, d in found), (at, found)
        committed = (paths.FIGURES / manifest.STAGING / manifest.JOURNAL).exists() or text == scenarios.new
        with manifest.updating():  # what the next `studio figures` does first
            pass
        assert paths.MANIFEST.read_text() == (scenarios.new if committed else scenarios.old), at
        _consistent()
        assert not (paths.FIGURES / manifest.STAGING).exists(), at
        assert (paths.FIGURES / "demo_old.png").exists() != committed, at  # stale files go with the new set
        if committed:
            assert (paths.FIGURES / "demo_plot.csv").read_text() == "x\n2\n"


def test_check_after_a_kill_before_the_manifest_names_the_interrupted_publish_and_figures_completes_it(
    scenarios, tmp_path, monkeypatch
):
    # The reported crash: the new CSVs are in figures/, the MANIFEST still holds the old hashes.
    [folder] = [
        f for f, at in scenarios.folders.items() if at.split()[0] == "replace" and at.endswith("/figures/MANIFEST")
    ]
    folder = _copy(folder, tmp_path)
    _point_at(monkeypatch, folder)
    assert (folder / "figures" / "demo_plot.csv").read_text() == "x\n2\n"  # renamed already
    assert paths.MANIFEST.read_text() == scenarios.old
    code, lines = check(monkeypatch, scenarios.b)
    report = "\n".join(lines)
    assert code == 1 and "edited after it was published" not in report
    assert "demo_plot: changed: a `studio figures` publishing notebooks/demo.ipynb was interrupted" in report
    assert "run `studio figures` to complete it" in report
    assert (folder / "figures" / manifest.STAGING).exists()  # --check leaves figures/ alone
    code, lines = check(monkeypatch, scenarios.b, publish_instead=True)
    assert code == 0 and any("completed the publish of notebooks/demo.ipynb" in line for line in lines)
    assert paths.MANIFEST.read_text() == scenarios.new
    code, lines = check(monkeypatch, scenarios.b)
    assert code == 0, lines
    assert lines[-1] == "figures --check: no change beyond the declared seed spread"


# --- item 8: images are hashed and checked --------------------------------------------------------------


def test_a_png_swapped_for_another_figures_or_a_missing_pdf_is_reported(project, tmp_path, monkeypatch):
    figures = {"demo_plot": _figure("x\n1\n", "plot"), "demo_other": _figure("x\n1\n", "other")}
    published = fake_run(tmp_path, "first", figures)
    code, _ = check(monkeypatch, published, publish_instead=True)
    assert code == 0
    entry = manifest.read_manifest()["demo_plot"]
    for ext in ("png", "pdf", "csv"):
        assert entry[f"{ext}_sha256"] == sha256_file(project / "figures" / f"demo_plot.{ext}")
    # A rerun whose images differ byte for byte (another matplotlib, other fonts) is no change: images
    # are checked against the MANIFEST, not against the rerun's.
    rerun = fake_run(tmp_path, "rerun", {n: _figure(f["csv"], "rendered elsewhere") for n, f in figures.items()})
    code, lines = check(monkeypatch, rerun)
    assert code == 0, lines
    shutil.copyfile(project / "figures" / "demo_other.png", project / "figures" / "demo_plot.png")
    code, lines = check(monkeypatch, rerun)
    assert code == 1
    assert any(
        line.strip().startswith(
            "demo_plot: changed: figures/demo_plot.png was replaced or edited after it was published"
        )
        for line in lines
    ), lines
    assert not any("demo_other: changed" in line for line in lines)
    (project / "figures" / "demo_other.pdf").unlink()
    code, lines = check(monkeypatch, rerun)
    assert code == 1 and any("demo_other: changed: figures/demo_other.pdf is missing" in line for line in lines)
    code, _ = check(monkeypatch, rerun, publish_instead=True)  # republishing repairs both
    assert code == 0
    _consistent()
    assert check(monkeypatch, rerun)[0] == 0


def test_a_manifest_without_image_hashes_is_read_and_the_next_publish_adds_them(project, tmp_path, monkeypatch):
    run = fake_run(
        tmp_path, "first", {"demo_plot": _figure("x\n1\n", "plot"), "demo_t": {"csv": "t\n1\n", "kind": "table"}}
    )
    assert check(monkeypatch, run, publish_instead=True)[0] == 0
    data = yaml.safe_load(paths.MANIFEST.read_text())
    for entry in data["figures"].values():  # as the committed figures/MANIFEST is: CSV hashes only
        entry.pop("png_sha256", None)
        entry.pop("pdf_sha256", None)
    paths.MANIFEST.write_text(manifest.HEADER + yaml.safe_dump(data, sort_keys=False, width=100))
    assert "png_sha256" not in paths.MANIFEST.read_text()
    code, lines = check(monkeypatch, run)
    assert code == 0, lines
    (project / "figures" / "demo_plot.pdf").unlink()  # an old entry's listed files are still checked
    code, lines = check(monkeypatch, run)
    assert code == 1 and any("figures/demo_plot.pdf is missing" in line for line in lines)
    assert check(monkeypatch, run, publish_instead=True)[0] == 0
    entries = manifest.read_manifest()
    assert entries["demo_plot"]["png_sha256"] == sha256_file(project / "figures" / "demo_plot.png")
    assert "png_sha256" not in entries["demo_t"]  # a table has no image
    assert check(monkeypatch, run)[0] == 0
