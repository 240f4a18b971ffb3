"""studio.sweep under abuse (issue 16): workers that outlive a killed sweep, metrics.json that is not a
finished run, two sweeps on one folder, configs the target refuses, --out on a scratch disk.

Runs use studio.sweep.toy:toy_target; outputs go to a throw-away project root.
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


def _write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- 3. workers die with the sweep -------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_a_sweep_with_workers_kills_its_workers(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    # cells of ~20 s: a worker that outlives its parent is still busy (or waiting) long after the kill
    cfg = _write_yaml(
        tmp_path / "slow.yaml",
        toy(base={"frames": 4, "tokens_per_frame": 4, "steps": 200, "sleep_s": 0.1, "seed": 0}, workers=2),
    )
    env = {**os.environ, "STUDIO_ROOT": str(root)}
    cmd = [sys.executable, "-c", f"from studio.sweep import run_sweep; run_sweep({str(cfg)!r}, out='out')"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((root / "out").glob("*/checkpoint.json"))) < 2:
            time.sleep(0.05)
        workers = [
            p for p in _children(proc.pid) if "multiprocessing" in _cmdline(p) and "resource_tracker" not in _cmdline(p)
        ]
        assert len(workers) == 2, f"expected two workers running cells, found {workers}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(map(_alive, workers)):
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "workers outlived the killed sweep"
    finally:
        for pid in [proc.pid, *workers]:  # only what this test started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --- 6. a metrics.json that is not a finished run ----------------------------------------------------


def test_metrics_without_the_required_keys_are_redone_and_named(sweep_project, capsys):
    first = run_toy(toy(), "out")
    empty, listed, partial = first.run_key[0], first.run_key[1], first.run_key[2]
    (sweep_project / "out" / empty / "metrics.json").write_text("{}\n")
    (sweep_project / "out" / listed / "metrics.json").write_text("[1, 2]\n")
    (sweep_project / "out" / partial / "metrics.json").write_text('{"val_loss": 1.0}\n')
    capsys.readouterr()
    again = run_toy(toy(), "out")
    err = capsys.readouterr().err
    assert again.attrs["ran"] == 3 and again.attrs["skipped"] == 1
    for key in (empty, listed, partial):
        assert f"out/{key}" in err
    assert "val_acc" in err and "not a mapping" in err
    assert not again.val_loss.isna().any()
    same = ["run_key", "val_loss", "val_acc"]  # the redone runs resume from the toy's last checkpoint
    pd.testing.assert_frame_equal(first[same], again[same])
    assert sweep.toy_target.required_metrics and "val_loss" in sweep.toy_target.required_metrics


def test_a_target_returning_no_required_metric_is_a_failed_run(sweep_project, monkeypatch):
    from studio.sweep import toy as toy_module

    real = toy_module.toy_target

    def forgetful(config, run_dir):
        return {"val_loss": real(config, run_dir)["val_loss"]}

    forgetful.required_metrics = real.required_metrics
    monkeypatch.setattr(toy_module, "toy_target", forgetful)
    df = run_toy(toy(grid={"frames": [1]}), "out")
    assert df.attrs["ran"] == 0 and len(df.attrs["failed"]) == 1
    error = json.loads((sweep_project / "out" / df.attrs["failed"][0] / "error.json").read_text())
    assert "val_acc" in error["message"]


# --- 7. two sweeps on one folder ---------------------------------------------------------------------

TWO = """
import json, sys
from studio.sweep import run_sweep
df = run_sweep(sys.argv[1], out="out", progress=False)
print(json.dumps({"ran": df.attrs["ran"], "skipped": df.attrs["skipped"], "rows": len(df)}))
"""


@pytest.mark.slow
def test_two_sweeps_on_one_out_train_each_cell_once(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    # four cells of ~1 s each: the two sweeps overlap whatever their start-up times
    cfg = _write_yaml(
        tmp_path / "slow.yaml", toy(base={"frames": 4, "tokens_per_frame": 4, "steps": 20, "sleep_s": 0.05, "seed": 0})
    )
    env = {**os.environ, "STUDIO_ROOT": str(root)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO, str(cfg)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["ran"] for r in results) == 4, results
    assert all(r["rows"] == 4 for r in results)
    df = pd.read_csv(root / "out" / "results.csv")
    assert (df.steps_run == 20).all() and (df.resumed_from_step == 0).all()


# --- 8. the target checks the config before any run starts -------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"base": {"frames": 4, "tokens_per_frame": 4, "steps": 3, "stepz": 3}}, "'stepz'"),
        ({"base": {"frames": 4, "tokens_per_frame": 4, "steps": -5}}, "steps"),
        ({"grid": {"steps": [3, -5]}}, "steps"),
        ({"base": {"frames": 4, "tokens_per_frame": 4, "steps": 3, "sleep_s": "long"}}, "sleep_s"),
    ],
)
def test_a_config_the_target_refuses_is_refused_before_any_run(sweep_project, change, message):
    with pytest.raises(ParameterError, match=message) as refused:
        run_toy(toy(**change), "out")
    assert str(refused.value).count("\n") == 0
    assert not (sweep_project / "out").exists() or not [p for p in (sweep_project / "out").iterdir() if p.is_dir()]


def test_the_toy_target_refuses_negative_steps_when_called_directly(tmp_path):
    with pytest.raises(ParameterError, match="steps"):
        sweep.toy_target({"steps": -5}, tmp_path)


# --- 11. an explicit --out may be anywhere the user can write -----------------------------------------


def test_cli_out_may_be_any_writable_folder_but_not_a_file(sweep_project, tmp_path, capsys):
    cfg = _write_yaml(sweep_project / "ok.yaml", toy())
    scratch = tmp_path / "scratch" / "sweeps" / "ok"
    assert cli.main(["sweep", str(cfg), "--out", str(scratch)]) == 0
    assert len(pd.read_csv(scratch / "results.csv")) == 4
    capsys.readouterr()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me\n")
    assert cli.main(["sweep", str(cfg), "--out", str(a_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(a_file) in err[0] and "file" in err[0]
    assert a_file.read_text() == "keep me\n"
    # a path from Python callers (notebook parameters, configs) still stays inside the project
    with pytest.raises(paths.PathError, match="outside the project"):
        run_toy(toy(), tmp_path / "elsewhere")
    # and an existing file inside the project is a clear error there too
    (sweep_project / "README.md").write_text("readme\n")
    with pytest.raises(paths.PathError, match="README.md"):
        run_toy(toy(), "README.md")
