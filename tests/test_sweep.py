"""studio.sweep: expansion, config checks, caching, resume after a kill, failures, launchers, CLI.

Runs use studio.sweep.toy:toy_target (no training); outputs go to a throw-away project root.
Run folders are keyed by config and code: the last tests edit a copy of the package and rerun.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_toy, toy

from studio import paths, sweep
from studio.errors import ParameterError
from studio.workbench import cli

TOY_YAML = paths.ROOT / "experiments" / "sweeps" / "toy.yaml"


# --- expansion ---------------------------------------------------------------------------------------


def test_expand_grid_seeds_exclude_include_trainer():
    cfg = sweep.parse_config(
        toy(
            grid={"frames": [1, 2, 4], "tokens_per_frame": [1, 4]},
            seeds=[0, 1],
            exclude=[{"frames": 2}, {"frames": 4, "tokens_per_frame": 4}, {"frames": 4, "seed": 1}],
            include=[
                {"frames": 3, "tokens_per_frame": 3},
                {"frames": 5, "seed": 7},
                {"frames": 1, "tokens_per_frame": 1},
            ],
            trainer={"accelerator": "cpu", "devices": 1},
        )
    )
    runs = sweep.expand(cfg)
    cells = [(r["frames"], r["tokens_per_frame"], r["seed"]) for r in runs]
    # grid order: last key fastest, seeds innermost; frames=2 dropped (partial match), (4, 4) dropped,
    # (4, 1) with seed 1 dropped;
    # includes follow, each run per seed unless it sets one; (1, 1) duplicates a grid cell: kept once.
    assert cells == [(1, 1, 0), (1, 1, 1), (1, 4, 0), (1, 4, 1), (4, 1, 0), (3, 3, 0), (3, 3, 1), (5, 4, 7)]
    assert all(r["steps"] == 3 and r["trainer"] == {"accelerator": "cpu", "devices": 1} for r in runs)
    keys = [sweep.run_key(r, "code") for r in runs]
    assert len(set(keys)) == len(keys)
    # the key is a hash of the full config, whatever the key order, and of the code
    assert sweep.run_key(dict(reversed(list(runs[0].items()))), "code") == keys[0]
    assert sweep.run_key({**runs[0], "steps": 4}, "code") != keys[0]
    assert sweep.run_key(runs[0], "other code") != keys[0]


def test_profiles_deep_merge_base_and_replace_the_rest():
    data = toy(
        base={"frames": 4, "tokens_per_frame": 4, "steps": 3, "opt": {"lr": 0.1, "wd": 0.0}},
        seeds=[0, 1],
        profiles={
            "smoke": {"grid": {"frames": [1]}, "seeds": [0], "base": {"opt": {"lr": 0.5}}},
            "default": {"base": {"steps": 5}},
        },
    )
    smoke = sweep.parse_config(data, "smoke")
    assert smoke.profile == "smoke" and smoke.grid == {"frames": [1]} and smoke.seeds == [0]
    assert smoke.base == {"frames": 4, "tokens_per_frame": 4, "steps": 3, "opt": {"lr": 0.5, "wd": 0.0}}
    assert len(sweep.expand(smoke)) == 1
    default = sweep.parse_config(data)  # no profile given: the file's `default`
    assert default.profile == "default" and default.base["steps"] == 5 and len(sweep.expand(default)) == 8
    with pytest.raises(ParameterError, match="no profile 'papr'.*smoke, default"):
        sweep.parse_config(data, "papr")
    plain = sweep.parse_config(toy(), "default")  # a file without profiles still runs as "default"
    assert plain.profile is None and plain.profile_name == "default"
    assert plain.default_out() == paths.SWEEPS / "t" / "default"


def test_toy_yaml_parses_in_every_profile():
    data = yaml.safe_load(TOY_YAML.read_text())
    for profile in data["profiles"]:
        cfg = sweep.load_config(TOY_YAML, profile)
        assert cfg.name == "toy" and cfg.target == "studio.sweep.toy:toy_target"
        assert len(sweep.expand(cfg)) >= 4
    assert len(sweep.expand(sweep.load_config(TOY_YAML, "smoke"))) == 4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grids": {}}, r"unknown key 'grids'; valid keys: name, description, target, base, grid"),
        ({"profiles": {"smoke": {"name": "x"}}}, r"profile 'smoke'.*unknown key 'name'; valid keys: target, base"),
        ({"profiles": {"smoke": {"seed": [0]}}}, r"unknown key 'seed'"),
        ({"grid": {"frame": [1, 2]}}, r"grid: unknown config key 'frame'; base keys: frames, tokens_per_frame"),
        ({"exclude": [{"tokens": 4}]}, r"exclude\[0\]: unknown config key 'tokens'"),
        ({"include": [{"frames": 2, "lr": 0.1}]}, r"include\[0\]: unknown config key 'lr'"),
        ({"grid": {"frames": 4}}, r"grid\['frames'\] must be a non-empty list"),
        ({"seeds": [0, "1"]}, r"seeds must be a non-empty list of ints"),
        ({"seeds": [0], "grid": {"seed": [0, 1]}}, r"'seed' is both in grid and seeds"),
        ({"target": "studio.sweep.toy.toy_target"}, r"target must be 'module:function'"),
        ({"name": "../x"}, r"name must be a folder-safe string"),
        ({"base": {"frames": 4, "lr": "1e-3"}}, r"lr = '1e-3' is a string to YAML; .* 1.0e-3"),
        ({"workers": 0}, r"workers must be an int >= 1"),
        ({"profiles": {"smoke": {"workers": "2"}}}, r"profile 'smoke'.*workers must be an int >= 1"),
    ],
)
def test_bad_configs_are_refused_with_a_clear_message(change, message):
    with pytest.raises(ParameterError, match=message):
        sweep.parse_config(toy(**change))


def test_missing_key_and_non_mapping_refused():
    data = toy()
    del data["target"]
    with pytest.raises(ParameterError, match="missing required key 'target'"):
        sweep.parse_config(data)
    with pytest.raises(ParameterError, match="expected a mapping"):
        sweep.parse_config([1, 2])


# --- running -----------------------------------------------------------------------------------------


def test_sweep_writes_run_folders_and_results(sweep_project):
    df = run_toy(toy(seeds=[0, 1]), "out")
    out = sweep_project / "out"
    assert df.attrs["ran"] == 8 and df.attrs["skipped"] == 0 and df.attrs["failed"] == []
    assert list(df.columns[:4]) == ["frames", "tokens_per_frame", "steps", "seed"]
    assert {"val_loss", "val_acc", "seconds", "code", "run_key"} <= set(df.columns)
    assert list(df.columns[-3:]) == ["seconds", "code", "run_key"] and df["code"].nunique() == 1
    on_disk = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(on_disk, df.reset_index(drop=True), check_dtype=False)
    for row in df.itertuples():
        d = out / row.run_key
        recorded = json.loads((d / "config.json").read_text())
        assert recorded["config"]["frames"] == row.frames and recorded["code"] == row.code
        assert json.loads((d / "metrics.json").read_text())["val_loss"] == row.val_loss
        assert json.loads((d / "timing.json").read_text())["seconds"] >= 0
        assert sweep.run_key(recorded["config"], recorded["code"]) == row.run_key
    assert row.code == sweep.target_code("studio.sweep.toy:toy_target")
    # the toy's loss falls with frames and with tokens per frame
    mean = df.groupby(["frames", "tokens_per_frame"]).val_loss.mean()
    assert mean[(4, 4)] < mean[(1, 4)] and mean[(4, 4)] < mean[(4, 1)]
    assert json.loads((out / "sweep.json").read_text())["n_runs"] == 8


def test_default_out_is_under_sweeps_name_profile(sweep_project):
    df = run_toy(toy(profiles={"smoke": {"grid": {"frames": [1]}}}), None, profile="smoke")
    assert Path(df.attrs["out"]) == sweep_project / "experiments" / "sweeps" / "t" / "smoke"
    assert (sweep_project / "experiments" / "sweeps" / "t" / "smoke" / "results.csv").exists()


def test_same_seed_same_metrics_other_seed_other_metrics(sweep_project):
    a = run_toy(toy(seeds=[0, 1]), "a")
    b = run_toy(toy(seeds=[0, 1]), "b")
    cols = ["val_loss", "val_acc", "run_key"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    by_seed = a.pivot_table(index=["frames", "tokens_per_frame"], columns="seed", values="val_loss")
    assert (by_seed[0] != by_seed[1]).all()


def test_rerun_skips_finished_runs_and_says_so(sweep_project, capsys):
    first = run_toy(toy(), "out")
    mtimes = {p: p.stat().st_mtime_ns for p in (sweep_project / "out").rglob("metrics.json")}
    capsys.readouterr()
    again = run_toy(toy(), "out")
    err = capsys.readouterr().err
    assert again.attrs["ran"] == 0 and again.attrs["skipped"] == 4
    assert "skipping 4 already finished" in err and "0 ran, 4 skipped, 0 failed" in err
    assert {p: p.stat().st_mtime_ns for p in (sweep_project / "out").rglob("metrics.json")} == mtimes
    pd.testing.assert_frame_equal(first, again)
    # a grown grid runs only the new cells
    grown = run_toy(toy(grid={"frames": [1, 4, 8], "tokens_per_frame": [1, 4]}), "out")
    assert grown.attrs["ran"] == 2 and grown.attrs["skipped"] == 4 and len(grown) == 6


STEPS4 = {"frames": 4, "tokens_per_frame": 4, "steps": 4, "seed": 0}


def test_killed_run_is_redone_or_resumed_and_leaves_no_torn_file(sweep_project):
    first = run_toy(toy(base=STEPS4), "out")
    key = first.run_key[1]
    d = sweep_project / "out" / key
    # what kill -9 can leave: no metrics.json, a torn temporary file, a checkpoint from step 1
    (d / "metrics.json").unlink()
    (d / "timing.json").unlink()
    (d / "metrics.json.tmp.99999").write_text('{"val_loss": 0.')
    ckpt = json.loads((d / "checkpoint.json").read_text())
    toy_cfg = json.loads((d / "config.json").read_text())["config"]
    # the loss after one step of the same run, as the toy would have checkpointed it
    (d / "checkpoint.json").write_text(json.dumps({"step": 1, "loss": _toy_loss_after(toy_cfg, 1, sweep_project)}))
    assert ckpt["step"] == 4
    again = run_toy(toy(base=STEPS4), "out")
    assert again.attrs["ran"] == 1 and again.attrs["skipped"] == 3
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 1 and metrics["steps_run"] == 3
    assert metrics["val_loss"] == pytest.approx(first.val_loss[1], rel=1e-9)
    assert not list((sweep_project / "out").rglob("*.tmp.*"))
    for p in (sweep_project / "out").rglob("*.json"):
        json.loads(p.read_text())  # nothing torn
    # a run folder with only config.json (killed before its first checkpoint) is redone from scratch
    key0 = first.run_key[0]
    for p in (sweep_project / "out" / key0).iterdir():
        if p.name != "config.json":
            p.unlink()
    third = run_toy(toy(base=STEPS4), "out")
    assert third.attrs["ran"] == 1
    assert json.loads((sweep_project / "out" / key0 / "metrics.json").read_text())["resumed_from_step"] == 0
    pd.testing.assert_frame_equal(first[["val_loss", "run_key"]], third[["val_loss", "run_key"]])


def _toy_loss_after(cfg, steps, scratch):
    d = scratch / "_probe"
    d.mkdir()
    sweep.toy_target({**cfg, "steps": steps}, d)
    return json.loads((d / "checkpoint.json").read_text())["loss"]


def test_out_outside_the_project_is_refused(sweep_project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(paths.PathError, match="outside the project"):
        run_toy(toy(), elsewhere)
    with pytest.raises(paths.PathError):
        run_toy(toy(), "../escape")
    assert not elsewhere.exists() and not (tmp_path / "escape").exists()


def test_failed_runs_are_recorded_and_the_others_still_run(sweep_project, capsys):
    cfg = toy(base={"frames": 4, "tokens_per_frame": 4, "fail": False}, grid={"frames": [1, 4], "fail": [False, True]})
    df = run_toy(cfg, "out")
    assert df.attrs["ran"] == 2 and len(df.attrs["failed"]) == 2 and len(df) == 2
    assert not df["fail"].any()
    for key in df.attrs["failed"]:
        error = json.loads((sweep_project / "out" / key / "error.json").read_text())
        assert error["type"] == "RuntimeError" and "asked to fail" in error["traceback"]
        assert not (sweep_project / "out" / key / "metrics.json").exists()
    assert "failed: out/" in capsys.readouterr().err
    # failed runs are retried by a rerun; the CLI exits 1
    rc = cli.main(["sweep", str(_write_yaml(sweep_project / "cfg.yaml", cfg)), "--out", "out"])
    captured = capsys.readouterr()
    assert rc == 1 and "2 ran" not in captured.err and "0 ran, 2 skipped, 2 failed" in captured.err
    assert "out/results.csv: 2 rows" in captured.out


def test_all_failed_still_writes_a_table_and_an_empty_grid_is_refused(sweep_project):
    df = run_toy(toy(base={"frames": 4, "fail": True}, grid={"frames": [1, 2]}), "out")
    assert len(df) == 0 and len(df.attrs["failed"]) == 2
    assert list(pd.read_csv(sweep_project / "out" / "results.csv").columns) == [
        "frames",
        "fail",
        "seconds",
        "code",
        "run_key",
    ]
    with pytest.raises(ParameterError, match="expands to no runs"):
        run_toy(toy(exclude=[{"steps": 3}]), "none")


def test_progress_bar_counts(sweep_project, capsys):
    sweep.run_sweep(toy(), out="out", progress=True)
    sweep.run_sweep(toy(grid={"frames": [1, 2, 4], "tokens_per_frame": [1, 4]}), out="out", progress=True)
    err = capsys.readouterr().err
    assert "done=4, skipped=0, failed=0" in err and "done=2, skipped=4, failed=0" in err
    assert "6/6" in err


@pytest.mark.slow
def test_local_workers_run_in_other_processes_with_the_same_results(sweep_project, capsys):
    """workers: 2 spawns two processes; every run gives what the in-process launcher gives."""
    df = sweep.run_sweep(toy(seeds=[0, 1], workers=2), out="par", progress=True)
    assert df.attrs["ran"] == 8 and df.attrs["failed"] == []
    assert "done=8, skipped=0, failed=0" in capsys.readouterr().err
    pids = {json.loads((sweep_project / "par" / k / "timing.json").read_text())["pid"] for k in df.run_key}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    serial = run_toy(toy(seeds=[0, 1]), "ser", workers=1)  # the argument overrides the config's workers
    pd.testing.assert_frame_equal(df.drop(columns="seconds"), serial.drop(columns="seconds"))
    again = run_toy(toy(seeds=[0, 1], workers=2), "par")
    assert again.attrs["skipped"] == 8 and again.attrs["ran"] == 0
    failing = run_toy(
        toy(grid={"fail": [False, True]}, base={"frames": 4, "fail": False, "seed": 0}), "fail", workers=2
    )
    assert failing.attrs["ran"] == 1 and len(failing.attrs["failed"]) == 1
    with pytest.raises(ParameterError, match="workers must be an int >= 1"):
        run_toy(toy(), "bad", workers=0)


def test_a_target_that_cannot_be_imported_is_a_config_error(sweep_project):
    with pytest.raises(ParameterError, match="cannot import studio.no_such_module"):
        run_toy(toy(target="studio.no_such_module:train"), "out")
    with pytest.raises(ParameterError, match="has no function 'nope'"):
        run_toy(toy(target="studio.sweep:nope"), "out")
    assert not (sweep_project / "out").exists() or not any((sweep_project / "out").iterdir())


def test_submitit_options_are_mapped_to_auto_executor_names():
    cluster, params = sweep.submitit_parameters(
        {
            "cluster": "local",
            "partition": "gpu",
            "timeout_min": 60,
            "gpus_per_node": 1,
            "array_parallelism": 8,
            "slurm_qos": "high",
        }
    )
    assert cluster == "local"
    assert params == {
        "slurm_partition": "gpu",
        "timeout_min": 60,
        "gpus_per_node": 1,
        "slurm_array_parallelism": 8,
        "slurm_qos": "high",
    }
    with pytest.raises(ParameterError, match="unknown cluster 'laptop'"):
        sweep.submitit_parameters({"cluster": "laptop"})


def test_submitit_launcher_debug_cluster(sweep_project):
    df = run_toy(toy(submitit={"cluster": "debug", "timeout_min": 1}), "sub", launcher="submitit")
    assert df.attrs["ran"] == 4 and df.attrs["failed"] == []
    local = run_toy(toy(), "loc")  # same runs, same numbers as the local launcher
    pd.testing.assert_frame_equal(df[["val_loss", "run_key"]], local[["val_loss", "run_key"]])
    assert (sweep_project / "sub" / "submitit").is_dir()
    with pytest.raises(ParameterError, match="submitit options"):
        run_toy(
            toy(grid={"frames": [2]}, submitit={"cluster": "debug", "timeout_min": "soon"}), "bad", launcher="submitit"
        )


@pytest.mark.slow
def test_submitit_launcher_local_executor_subprocesses(sweep_project):
    """Real subprocesses (submitit's LocalExecutor), one ok run and one failing run."""
    cfg = toy(
        grid={"fail": [False, True]},
        base={"frames": 4, "fail": False, "seed": 0},
        submitit={"cluster": "local", "timeout_min": 2},
    )
    df = run_toy(cfg, "sub", launcher="submitit")
    assert df.attrs["ran"] == 1 and len(df.attrs["failed"]) == 1 and len(df) == 1
    error = json.loads((sweep_project / "sub" / df.attrs["failed"][0] / "error.json").read_text())
    assert "asked to fail" in error["message"]
    reference = run_toy(toy(grid={"fail": [False]}, base={"frames": 4, "fail": False, "seed": 0}), "loc")
    pd.testing.assert_frame_equal(df[["val_loss", "run_key"]], reference[["val_loss", "run_key"]])
    for key in df.run_key:
        assert json.loads((sweep_project / "sub" / key / "timing.json").read_text())["launcher"] == "submitit"
    again = run_toy(
        toy(
            grid={"fail": [False]},
            base={"frames": 4, "fail": False, "seed": 0},
            submitit={"cluster": "local", "timeout_min": 2},
        ),
        "sub",
        launcher="submitit",
    )
    assert again.attrs["skipped"] == 1 and again.attrs["ran"] == 0


# --- CLI ---------------------------------------------------------------------------------------------


def _write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_cli_bad_config_exits_2_with_one_clear_line(sweep_project, capsys):
    bad = _write_yaml(sweep_project / "bad.yaml", toy(grids={"frames": [1]}))
    assert cli.main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'grids'" in err[0] and "valid keys" in err[0]
    assert cli.main(["sweep", str(sweep_project / "missing.yaml")]) == 2
    assert cli.main(["sweep", str(_write_yaml(sweep_project / "ok.yaml", toy())), "--profile", "nope"]) == 2
    # an explicit --out may be outside the project (scratch disks) but not an existing file
    assert cli.main(["sweep", str(sweep_project / "ok.yaml"), "--out", str(sweep_project / "bad.yaml")]) == 2
    with pytest.raises(SystemExit) as bad_workers:  # argparse: usage + one error line, exit 2
        cli.main(["sweep", str(sweep_project / "ok.yaml"), "--workers", "0"])
    assert bad_workers.value.code == 2 and "--workers: expected an int >= 1" in capsys.readouterr().err
    (sweep_project / "torn.yaml").write_text("name: [t\n")
    assert cli.main(["sweep", str(sweep_project / "torn.yaml")]) == 2


def test_cli_runs_and_prints_results_path(sweep_project, capsys):
    cfg = _write_yaml(sweep_project / "ok.yaml", toy())
    assert cli.main(["sweep", str(cfg), "--out", "experiments/sweeps/ok"]) == 0
    out = capsys.readouterr().out
    assert "experiments/sweeps/ok/results.csv: 4 rows (4 ran, 0 skipped, 0 failed)" in out
    assert sweep.main([str(cfg), "--out", "experiments/sweeps/ok"]) == 0


@pytest.mark.slow
def test_kill_9_midway_leaves_no_torn_file_and_the_rerun_resumes(tmp_path):
    """A real sweep process killed with SIGKILL while a run is checkpointing, then rerun."""
    root = tmp_path / "proj"
    root.mkdir()
    cfg = _write_yaml(
        tmp_path / "slow.yaml", toy(base={"frames": 4, "tokens_per_frame": 4, "steps": 30, "sleep_s": 0.02, "seed": 0})
    )
    env = {**os.environ, "STUDIO_ROOT": str(root)}
    # run_sweep directly rather than the CLI: studio.workbench.cli imports studio.workbench.params (nbformat, seconds)
    cmd = [sys.executable, "-c", f"from studio.sweep import run_sweep; run_sweep({str(cfg)!r}, out='out')"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    out = root / "out"
    while time.time() < deadline and len(list(out.glob("*/checkpoint.json"))) < 2:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(out.glob("*/checkpoint.json"))) >= 2, "the sweep did not get going in 60 s"
    assert len(list(out.glob("*/metrics.json"))) < 4
    for p in out.rglob("*.json"):
        json.loads(p.read_text())  # every file that exists is whole
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipping" in done.stderr
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and (df.steps_run + df.resumed_from_step == 30).all()
    assert (df.resumed_from_step > 0).any()  # the killed run picked up its checkpoint
    assert not list(out.rglob("*.tmp.*"))


def test_default_out_may_be_a_configured_root_outside_the_project(sweep_project, tmp_path, monkeypatch):
    """STUDIO_SWEEPS set by the user (or the tests) is trusted; an `out` from a caller is not."""
    elsewhere = tmp_path / "configured-sweeps"
    monkeypatch.setattr(paths, "SWEEPS", elsewhere)
    df = run_toy(toy(grid={"frames": [1]}), None)
    assert Path(df.attrs["out"]) == elsewhere / "t" / "default" and df.attrs["ran"] == 1
    with pytest.raises(paths.PathError, match="outside the project"):
        run_toy(toy(), elsewhere / "t" / "again")


def test_a_bare_name_is_a_file_under_sweep_configs():
    assert sweep.config_path("toy") == TOY_YAML
    assert sweep.load_config("toy", "smoke").target == "studio.sweep.toy:toy_target"


# --- keyed by code: edit a copy of the package and rerun ---------------------------------------------

RERUN = """
import json, sys
import studio
from studio.sweep import run_sweep
df = run_sweep(sys.argv[1], profile="smoke", progress=False)
print(json.dumps({"ran": df.attrs["ran"], "skipped": df.attrs["skipped"], "code": df.attrs["code"],
                  "package": studio.__file__}))
"""


def test_editing_the_target_reruns_its_cells_editing_anything_else_reruns_nothing(tmp_path):
    """The issue's test: runs are keyed by config AND the code behind the target (studio.cache).

    A copy of the `studio` package in a temporary folder (PYTHONPATH points at it; runs, sweeps and
    caches at the temporary folder too) runs the toy sweep; a comment added to the toy target's module
    reruns every cell; one added to modules it does not import (a study, the sweep engine's launcher,
    the figures helper) reruns none.
    """
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(paths.ROOT / "studio", copy / "studio", ignore=shutil.ignore_patterns("__pycache__"))
    cfg = tmp_path / "toy.yaml"
    shutil.copy(TOY_YAML, cfg)
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "STUDIO_ROOT": str(tmp_path),
        "STUDIO_RUNS": str(tmp_path / "runs"),
        "STUDIO_SWEEPS": str(tmp_path / "sweeps"),
        "STUDIO_CACHE": str(tmp_path / "cache"),
    }

    def rerun() -> dict:
        # cwd: not the checkout, whose studio/ would come first on sys.path ("" for python -c)
        done = subprocess.run(
            [sys.executable, "-c", RERUN, str(cfg)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def append(rel: str) -> None:
        with open(copy / "studio" / rel, "a") as f:
            f.write("\n# an edit\n")

    first = rerun()
    assert first["package"].startswith(str(copy)), "the subprocess imported the real package, not the copy"
    assert first["ran"] == 4 and first["skipped"] == 0
    for rel in ("studies/visual_context.py", "sweep/launchers.py", "figures.py"):
        append(rel)
    untouched = rerun()
    assert untouched == {**first, "ran": 0, "skipped": 4}  # same code fingerprint, nothing trained
    append("sweep/toy.py")
    edited = rerun()
    assert edited["ran"] == 4 and edited["skipped"] == 0 and edited["code"] != first["code"]
    runs = sorted(p.parent.name for p in (tmp_path / "sweeps" / "toy" / "smoke").glob("*/metrics.json"))
    assert len(runs) == 8  # the old runs stay in their folders; the new code's runs sit beside them


@pytest.mark.parametrize("path", sorted(paths.SWEEP_CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_profile_of_every_sweep_config_passes_its_targets_checks(path):
    """The paper profiles (for a GPU) never run here: this at least builds every run config of every
    profile and hands it to the target's `check_config`, as `studio sweep` does before any run starts."""
    from studio.sweep.config import expand, load_config
    from studio.sweep.execute import check_runs
    from studio.sweep.run import resolve_target

    profiles = yaml.safe_load(path.read_text()).get("profiles") or {}
    for profile in [None, *profiles]:
        config = load_config(path, profile)
        runs = expand(config)
        assert runs, f"{path.name} profile {profile}: no runs"
        check_runs(config, resolve_target(config.target), runs)
