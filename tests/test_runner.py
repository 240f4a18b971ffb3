"""The runner end to end: run folders, provenance, failures, determinism, figures and the MANIFEST."""

import functools
import json

import nbformat
import pytest
import yaml

from studio import paths
from studio.errors import ParameterError
from studio.repro import sha256_file
from studio.workbench import cli, regenerate, runner


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throwaway project: the real quickstart notebook and profiles, runs and figures in tmp_path."""
    nb_dir, exp_dir, fig_dir = tmp_path / "notebooks", tmp_path / "experiments", tmp_path / "figures"
    for d in (nb_dir, exp_dir):
        d.mkdir()  # no figures/: a fresh clone may not have one
    (nb_dir / "quickstart.ipynb").write_bytes((paths.NOTEBOOKS / "quickstart.ipynb").read_bytes())
    (exp_dir / "quickstart.yaml").write_bytes((paths.EXPERIMENTS / "quickstart.yaml").read_bytes())
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "NOTEBOOKS", nb_dir)
    monkeypatch.setattr(paths, "EXPERIMENTS", exp_dir)
    monkeypatch.setattr(paths, "RUNS", exp_dir / "runs")
    monkeypatch.setattr(paths, "FIGURES", fig_dir)
    monkeypatch.setattr(paths, "MANIFEST", fig_dir / "MANIFEST")
    (tmp_path / "README.md").write_text("# t\n<!-- gallery:start -->\n<!-- gallery:end -->\n")
    monkeypatch.setattr(paths, "README", tmp_path / "README.md")
    return tmp_path


def _failing_notebook(folder):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# fails"),
        nbformat.v4.new_code_cell("seed: int = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('planted failure')"),
    ]
    nb.metadata["kernelspec"] = {"name": "studio", "display_name": "Python (studio)", "language": "python"}
    path = folder / "notebooks" / "fails.ipynb"
    nbformat.write(nb, path)
    return path


def test_bad_parameter_fails_before_any_run_folder_or_kernel(project, capsys):
    code = cli.main(["run", str(project / "notebooks" / "quickstart.ipynb"), "-p", "n_splits", "2.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "parameter 'n_splits' (-p) must be int" in err and err.count("\n") == 1
    assert not (project / "experiments" / "runs").exists()
    assert cli.main(["run", str(project / "notebooks" / "quickstart.ipynb"), "-p", "speed", "1"]) == 2
    assert "valid parameters: seed, grids, n_splits, test_fraction" in capsys.readouterr().err
    assert cli.main(["run", str(project / "notebooks" / "nothere.ipynb")]) == 2


@pytest.mark.slow
def test_run_writes_folder_with_provenance_and_is_deterministic(project, capfd):
    import zmq

    nb = project / "notebooks" / "quickstart.ipynb"
    a = runner.run_notebook(nb, "smoke", overrides={"seed": 3}, progress=False)
    if zmq.has("curve"):  # the kernel's ports are encrypted, so it has no plain-TCP warning to print
        assert "without encryption" not in capfd.readouterr().err
    b = runner.run_notebook(nb, "smoke", overrides={"seed": 3}, progress=False)
    assert a.run_dir != b.run_dir and a.params_hash == b.params_hash
    assert a.run_dir.parent == project / "experiments" / "runs" / "quickstart"
    assert a.run_dir.name.endswith(a.params_hash)
    assert (a.run_dir / "quickstart.ipynb").exists()
    params = yaml.safe_load((a.run_dir / "params.yaml").read_text())
    assert params["seed"] == 3 and params["n_splits"] == 2
    prov = json.loads((a.run_dir / "provenance.json").read_text())
    assert prov["status"] == "ok" and prov["seed"] == 3 and prov["profile"] == "smoke"
    assert prov["packages"]["torch"].startswith("2.13.0") and prov["python"]
    assert set(prov["git"]) == {"commit", "dirty"} and prov["seconds"] > 0
    assert prov["notebook_sha256"] == sha256_file(nb) and prov["numerics"] in ("portable", "fast")
    executed = nbformat.read(a.run_dir / "quickstart.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "seed = 3" in injected[0].source
    csv_a, csv_b = a.figures_dir / "quickstart_pooling.csv", b.figures_dir / "quickstart_pooling.csv"
    assert sha256_file(csv_a) == sha256_file(csv_b)  # same seed, same bytes
    c = runner.run_notebook(nb, "smoke", overrides={"seed": 4}, progress=False)
    assert sha256_file(c.figures_dir / "quickstart_pooling.csv") != sha256_file(csv_a)


@pytest.mark.slow
def test_failing_cell_names_the_cell_keeps_the_folder_marked_failed(project, capsys):
    earlier = project / "experiments" / "runs" / "fails" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "provenance.json").write_text('{"status": "ok"}')
    path = _failing_notebook(project)
    assert cli.main(["run", str(path), "-q"]) == 1
    err = capsys.readouterr().err
    assert "raised ValueError: planted failure" in err and "cell 4" in err
    runs = [d for d in (project / "experiments" / "runs" / "fails").iterdir() if d.name != "earlier"]
    assert len(runs) == 1
    prov = json.loads((runs[0] / "provenance.json").read_text())
    assert prov["status"] == "failed" and prov["error"]["ename"] == "ValueError"
    assert str(runs[0] / "fails.ipynb").split("/experiments/")[-1] in err.replace(str(project) + "/", "")
    assert (earlier / "provenance.json").read_text() == '{"status": "ok"}'  # nothing earlier touched


@pytest.mark.slow
def test_figures_publish_manifest_and_check(project, monkeypatch):
    # A seeded two-cell notebook, not quickstart: the MANIFEST and --check machinery is what is tested here
    # (three runs); a real notebook's same-seed bytes are test_run_writes_folder_with_provenance_and_is_deterministic's.
    (project / "notebooks" / "quickstart.ipynb").unlink()
    (project / "experiments" / "quickstart.yaml").unlink()
    _seeded_notebook(project, "demo")
    monkeypatch.setenv("STUDIO_ROOT", str(project))  # a worker process finds the same project
    monkeypatch.setenv("STUDIO_RUNS", str(project / "experiments" / "runs"))
    assert regenerate.run_figures("smoke", echo=lambda *_: None) == 0
    manifest = yaml.safe_load((project / "figures" / "MANIFEST").read_text())["figures"]
    entry = manifest["demo_draws"]
    for ext in ("png", "pdf", "csv"):
        assert (project / "figures" / f"demo_draws.{ext}").exists()
    assert entry["csv_sha256"] == sha256_file(project / "figures" / "demo_draws.csv")
    assert entry["profile"] == "smoke" and entry["seed"] == 0 and entry["caption"]
    assert entry["notebook"].endswith("demo.ipynb") and len(entry["params_hash"]) == 8
    assert "figures/demo_draws.png" in (project / "README.md").read_text()  # the gallery
    before = (project / "figures" / "demo_draws.csv").read_bytes()
    assert regenerate.run_figures("smoke", check=True, echo=lambda *_: None) == 0  # same seed, same data
    # A tampered figure is reported, and --check leaves figures/ alone.
    (project / "figures" / "MANIFEST").write_text(
        (project / "figures" / "MANIFEST").read_text().replace(entry["csv_sha256"], "deadbeef" * 8)
    )
    lines = []
    assert regenerate.run_figures("smoke", check=True, echo=lines.append) == 1
    assert any("demo_draws: changed: " in line and "edited after it was published" in line for line in lines)
    assert (project / "figures" / "demo_draws.csv").read_bytes() == before


def _seeded_notebook(folder, name: str):
    """A figure notebook of two cells whose figure data is a function of its seed alone."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seed: int = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import numpy as np, pandas as pd\nfrom studio.figures import figure, save_figure\n"
            "y = np.random.default_rng(seed).random(5)\nfig, ax = figure(); ax.plot(y)\n"
            f"save_figure(fig, '{name}_draws', pd.DataFrame({{'y': y}}), caption='five seeded draws')"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "studio", "display_name": "Python (studio)", "language": "python"}
    nbformat.write(nb, folder / "notebooks" / f"{name}.ipynb")
    profiles = {"figures": True, "profiles": {"smoke": {}, "default": {}}}
    (folder / "experiments" / f"{name}.yaml").write_text(yaml.safe_dump(profiles))


def _tiny_notebook(folder, name: str, after=()):
    """A figure notebook of two cells that records when it ran (for ordering) and saves one figure."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seed: int = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, time\nimport pandas as pd\nfrom studio.figures import figure, save_figure\n"
            "t0 = time.time(); time.sleep(2)\nfig, ax = figure(); ax.plot([0, 1], [0, seed])\n"
            # times as text: the CSV's float format keeps 6 digits
            f"save_figure(fig, '{name}_x', pd.DataFrame({{'start': [f'{{t0:.3f}}'], 'end': [f'{{time.time():.3f}}'], "
            "'pid': [os.getpid()]}), caption='tiny')"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "studio", "display_name": "Python (studio)", "language": "python"}
    nbformat.write(nb, folder / "notebooks" / f"{name}.ipynb")
    profiles = {"figures": True, "after": list(after), "profiles": {"smoke": {}, "default": {}}}
    (folder / "experiments" / f"{name}.yaml").write_text(yaml.safe_dump(profiles))


def test_figures_start_the_longest_remaining_chain_first(tmp_path):
    from studio.workbench.params import NotebookSpec

    def spec(name, after=()):
        return NotebookSpec(name, tmp_path / f"{name}.ipynb", {}, {}, figures=True, after=list(after))

    def ran(name, profile, seconds, status="ok", stamp="20260101T000000Z"):
        folder = tmp_path / "runs" / name / f"{stamp}-abc"
        folder.mkdir(parents=True)
        record = {"status": status, "profile": profile, "seconds": seconds}
        (folder / "provenance.json").write_text(json.dumps(record))

    # upstream 20 s + downstream 50 s (a 70 s chain) beats a lone 60 s notebook; never-run ones count 60 s
    ran("up", "default", 20.0)
    ran("down", "default", 50.0)
    ran("lone", "default", 60.0)
    ran("lone", "default", 5.0, status="failed", stamp="20260102T000000Z")  # newer but failed: ignored
    ran("lone", "smoke", 1.0, stamp="20260103T000000Z")  # another profile: ignored
    ran("short", "default", 3.0)
    specs = [spec("lone"), spec("short"), spec("up"), spec("down", after=["up"]), spec("new")]
    seconds = {s.name: regenerate.last_seconds(s.name, "default", tmp_path / "runs") for s in specs}
    assert seconds == {"lone": 60.0, "short": 3.0, "up": 20.0, "down": 50.0, "new": regenerate.UNKNOWN_SECONDS}
    assert regenerate.critical_path(specs, seconds)["up"] == 70.0
    order = [s.name for s in regenerate.queue(specs, "default", tmp_path / "runs")]
    assert order == ["up", "lone", "new", "down", "short"]


@pytest.mark.slow
def test_figures_jobs_run_independent_notebooks_side_by_side_after_their_upstream(project, monkeypatch):
    (project / "notebooks" / "quickstart.ipynb").unlink()
    (project / "experiments" / "quickstart.yaml").unlink()
    _tiny_notebook(project, "aa")
    _tiny_notebook(project, "bb")
    _tiny_notebook(project, "cc", after=["aa"])
    monkeypatch.setenv("STUDIO_ROOT", str(project))  # the spawned workers find the same project
    monkeypatch.setenv("STUDIO_RUNS", str(project / "experiments" / "runs"))
    lines = []
    assert regenerate.run_figures("smoke", jobs=2, echo=lines.append) == 0
    import pandas as pd

    t = {n: pd.read_csv(project / "figures" / f"{n}_x.csv").iloc[0] for n in ("aa", "bb", "cc")}
    assert t["aa"]["start"] < t["bb"]["end"] and t["bb"]["start"] < t["aa"]["end"]  # aa and bb overlapped
    assert t["cc"]["start"] >= t["aa"]["end"]  # cc waited for aa
    manifest = yaml.safe_load((project / "figures" / "MANIFEST").read_text())["figures"]
    assert set(manifest) == {"aa_x", "bb_x", "cc_x"}  # each worker's entries merged, none lost


def test_a_manifest_entry_outside_figures_is_refused_and_nothing_is_deleted(project, tmp_path_factory):
    from studio.workbench import manifest

    victim = tmp_path_factory.mktemp("outside") / "precious.txt"
    victim.write_text("keep me")
    (project / "figures").mkdir()
    (project / "figures" / "MANIFEST").write_text(
        yaml.safe_dump(
            {"figures": {"old": {"notebook": "notebooks/quickstart.ipynb", "files": ["figures/old.png", str(victim)]}}}
        )
    )
    (project / "figures" / "old.png").write_text("png")

    class Result:
        figures_dir = project / "nothing"
        provenance = {"notebook": "notebooks/quickstart.ipynb", "git": {}}

    with pytest.raises(ParameterError, match="'old' lists .*precious.txt.*not inside figures/"):
        manifest.publish(Result(), manifest.read_manifest())
    assert victim.read_text() == "keep me" and (project / "figures" / "old.png").exists()
    (project / "figures" / "MANIFEST").write_text("figures: [unclosed")
    with pytest.raises(ParameterError, match="not valid YAML"):
        manifest.read_manifest()


def _csv(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_check_tells_identical_from_within_spread_from_changed(tmp_path):
    from studio.workbench.manifest import CHANGED, IDENTICAL, WITHIN, classify

    csv = functools.partial(_csv, tmp_path)

    old = csv("old.csv", "T,M,val_loss,task\n1,4,0.50,a\n4,4,0.27,a\n")
    assert classify(old, csv("same.csv", old.read_text()))[0] == IDENTICAL
    nudged = csv("nudged.csv", "T,M,val_loss,task\n1,4,0.505,a\n4,4,0.268,a\n")
    assert classify(old, nudged, tolerance={"val_loss": 0.01})[0] == WITHIN  # inside the seed spread
    status, detail = classify(old, nudged)  # no tolerance declared: a real change
    assert status == CHANGED and "val_loss: 2 value(s), max |diff| 0.005 (no tolerance declared)" in detail
    status, detail = classify(
        old, csv("far.csv", "T,M,val_loss,task\n1,4,0.60,a\n4,4,0.27,a\n"), tolerance={"val_loss": 0.01}
    )
    assert status == CHANGED and "(tolerance 0.01)" in detail
    assert classify(old, csv("rounded.csv", "T,M,val_loss,task\n1,4,0.500001,a\n4,4,0.27,a\n"))[0] == WITHIN
    assert classify(old, csv("text.csv", "T,M,val_loss,task\n1,4,0.50,b\n4,4,0.27,a\n"))[0] == CHANGED
    assert classify(old, csv("rows.csv", "T,M,val_loss,task\n1,4,0.50,a\n"))[0] == CHANGED
    v_old = csv("v_old.csv", "claim,paper,verdict,value\nc1,p,reproduced,0.3\nc2,p,tie,0.01\n")
    v_same = csv("v_same.csv", "claim,paper,verdict,value\nc1,p,reproduced,0.31\nc2,p,tie,0.02\n")
    v_flip = csv("v_flip.csv", "claim,paper,verdict,value\nc1,p,reproduced,0.31\nc2,p,reproduced,0.2\n")
    assert classify(v_old, v_same, "verdicts")[0] == WITHIN
    status, detail = classify(v_old, v_flip, "verdicts")
    assert status == CHANGED and "'c2': tie -> reproduced" in detail


def test_check_reads_tolerances_per_group_per_row_interval_and_per_seed_text(tmp_path):
    import pandas as pd

    from studio.tolerance import normalise
    from studio.workbench.manifest import CHANGED, WITHIN, classify

    csv = functools.partial(_csv, tmp_path)

    # a long table: the gap moves 0.2 (its seeds spread 0.3), the probe 0.02 (its seeds spread 0.01)
    old = csv("long.csv", "metric,value,per_seed\ngap,1.0,0.9 1.1\nprobe,0.60,0.6 0.6\n")
    new = csv("long2.csv", "metric,value,per_seed\ngap,1.2,1.0 1.1\nprobe,0.62,0.6 0.6\n")
    by = {"by": "metric", "spread": {"gap": 0.3, "probe": 0.01}}
    status, detail = classify(old, new, tolerance={"value": by, "per_seed": by})
    assert status == CHANGED and detail.startswith("value: 1 value(s), max |diff| 0.02 (tolerance per metric)")
    assert classify(old, new, tolerance={"value": {**by, "spread": {"gap": 0.3, "probe": 0.05}}, "per_seed": by})[
        0
    ] == (WITHIN)
    moved_seed = csv("long3.csv", "metric,value,per_seed\ngap,1.0,0.9 1.5\nprobe,0.60,0.6 0.6\n")
    status, detail = classify(old, moved_seed, tolerance={"value": by, "per_seed": by})
    assert status == CHANGED and detail.startswith("per_seed: 1 value(s), max |diff| 0.4")
    assert classify(old, moved_seed)[0] == CHANGED  # text without a tolerance: any edit is a change
    # a number with its own interval: it may move half the interval's width
    est = csv("est.csv", "x,ci_low,ci_high\n4.6,4.0,7.4\n")
    iv = {"interval": ["ci_low", "ci_high"]}
    assert (
        classify(
            est,
            csv("est2.csv", "x,ci_low,ci_high\n6.2,4.1,7.5\n"),
            tolerance={c: iv for c in "x ci_low ci_high".split()},
        )[0]
        == WITHIN
    )
    status, _ = classify(est, csv("est3.csv", "x,ci_low,ci_high\n6.4,4.0,7.4\n"), tolerance={"x": iv})
    assert status == CHANGED  # 1.8 > 3.4 / 2
    data = pd.DataFrame({"metric": ["gap"], "value": [1.0], "lo": [0.5], "hi": [1.5]})
    assert normalise("f", data, {"value": {"by": "metric", "spread": {"gap": 1}}}) == {
        "value": {"by": "metric", "spread": {"gap": 1.0}}
    }
    for bad in (
        {"value": -1},
        {"nope": 1},
        {"value": {"by": "nope", "spread": {}}},
        {"value": {"interval": ["lo", "x"]}},
    ):
        with pytest.raises(ValueError, match="tolerance needs"):
            normalise("f", data, bad)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # the same name and hash at once, as two `studio run` would
        folders = list(pool.map(lambda _: runner._new_run_dir("nb", "abcd1234", tmp_path), range(40)))
    assert len(set(folders)) == 40 and all(f.is_dir() for f in folders)


@pytest.mark.slow
def test_sigterm_records_the_run_as_interrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    for d in ("notebooks", "experiments"):
        (tmp_path / d).mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seed: int = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
    ]
    nb.metadata["kernelspec"] = {"name": "studio", "display_name": "Python (studio)", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "sleeper.ipynb")
    env = dict(os.environ, STUDIO_ROOT=str(tmp_path), STUDIO_RUNS=str(tmp_path / "runs"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "studio.workbench.cli", "run", "notebooks/sleeper.ipynb", "-q"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 90
    while not list((tmp_path / "runs").glob("sleeper/*/sleeper.ipynb")) and time.time() < deadline:
        time.sleep(0.5)  # the executed notebook appears once the kernel runs the first cell
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)  # what SLURM, `timeout` and `kill` send
    _, err = proc.communicate(timeout=60)
    [run] = list((tmp_path / "runs" / "sleeper").iterdir())
    assert json.loads((run / "provenance.json").read_text())["status"] == "interrupted"
    assert proc.returncode == 130 and "interrupted" in err


@pytest.mark.slow
def test_two_figures_processes_at_once_keep_each_others_manifest_entries(project):
    import os
    import subprocess
    import sys

    (project / "notebooks" / "quickstart.ipynb").unlink()
    (project / "experiments" / "quickstart.yaml").unlink()
    _tiny_notebook(project, "aa")
    _tiny_notebook(project, "bb")
    env = dict(os.environ, STUDIO_ROOT=str(project), STUDIO_RUNS=str(project / "experiments" / "runs"))
    code = "import sys; from studio.workbench.regenerate import run_figures; sys.exit(run_figures('smoke', only=[sys.argv[1]], jobs=1))"
    procs = [subprocess.Popen([sys.executable, "-c", code, name], env=env, cwd=project) for name in ("aa", "bb")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    manifest = yaml.safe_load((project / "figures" / "MANIFEST").read_text())["figures"]
    assert set(manifest) == {"aa_x", "bb_x"}  # neither run's write-back lost the other's entry
    readme = (project / "README.md").read_text()
    assert "figures/aa_x.png" in readme and "figures/bb_x.png" in readme
