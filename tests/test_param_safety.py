"""Hardening II: no parameter value runs code, and every bad value is one line naming it (issue 27, 1-5)."""

from __future__ import annotations

import base64
import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from studio import paths
from studio.errors import ParameterError
from studio.plain import check_plain, check_probability, load_yaml_text, read_yaml
from studio.sweep.config import load_config
from studio.workbench.cli import main
from studio.workbench.params import list_notebooks, parse_cli_value, read_notebook, resolve

CONTAINERS = ("list", "tuple", "dict", "any", "Any", "object")


def _payload(marker: Path) -> str:
    """YAML's standard !!binary tag whose bytes, written unescaped by papermill, would close the quote."""
    code = f'"+str(__import__("os").system("touch {marker}"))+"'
    return "!!binary " + base64.b64encode(code.encode()).decode()


def _container_params():
    for nb in list_notebooks():
        spec = read_notebook(nb)
        for p in spec.params.values():
            if p.type.split("[")[0].split(" ")[0] in CONTAINERS or isinstance(p.default, (list, tuple, dict)):
                yield pytest.param(spec, p, id=f"{spec.name}.{p.name}")


@pytest.mark.parametrize(("spec", "param"), list(_container_params()))
def test_every_container_parameter_refuses_bytes_inside(spec, param, tmp_path):
    marker = tmp_path / "pwned"
    inner = _payload(marker)
    text = f"{{k: {inner}}}" if param.type.startswith(("dict", "Dict", "Mapping")) else f"[1, {inner}]"
    value = parse_cli_value(text, param.name)
    with pytest.raises(ParameterError, match=rf"parameter '{param.name}' \(-p\).*bytes is not allowed"):
        resolve(spec, overrides={param.name: value})
    # ... and through a parameters file (-f), whose message names the file
    f = tmp_path / "params.yaml"
    f.write_text(f"{param.name}: {text}\n")
    with pytest.raises(ParameterError, match=rf"parameter '{param.name}' \(file .*params.yaml\)"):
        resolve(spec, files=[f])
    assert not marker.exists()


def test_the_reported_command_is_refused_and_runs_nothing(tmp_path):
    """The exact probe of the issue, end to end through the `studio` command."""
    marker = tmp_path / "pwned"
    cmd = [sys.executable, "-m", "studio.workbench.cli", "run", "notebooks/scaling_laws.ipynb"]
    cmd += ["--profile", "smoke", "-p", "where", "{k: " + _payload(marker) + "}"]
    r = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "parameter 'where' (-p) at ['k']: a value of type bytes is not allowed" in r.stderr
    assert "Traceback" not in r.stderr and not marker.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"x", "type bytes"),
        (datetime.date(2026, 1, 1), "type date"),
        ({1, 2}, "type set"),
        ([1, [2, {"a": float("nan")}]], r"at \[1\]\[1\]\['a'\]: nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        ("a\ud800b", "lone surrogate"),
        ({(1, 2): 3}, "keys must be plain scalars"),
    ],
)
def test_only_plain_values_pass(value, message):
    with pytest.raises(ParameterError, match=message):
        check_plain(value, "parameter 'x'")


def test_plain_values_pass_and_cycles_are_named():
    check_plain({"a": [1, 2.5, None, True, "s", {"b": []}], 3: (1, 2)}, "x")
    shared = [1]
    check_plain([shared, shared], "x")  # an alias (YAML's *a without a cycle) is fine
    cyclic = load_yaml_text("&a [1, *a]", "-p tokens")
    with pytest.raises(ParameterError, match="contains itself"):
        check_plain(cyclic, "parameter 'tokens' (-p)")


def test_huge_integers_and_bad_bytes_are_one_line(tmp_path):
    digits = "1" * 5000
    with pytest.raises(ParameterError, match="parameter 'seed' \\(-p\\).*more than \\d+ digits"):
        parse_cli_value(digits, "seed")
    f = tmp_path / "p.yaml"
    f.write_text(f"seed: {digits}\n")
    with pytest.raises(ParameterError, match="p.yaml.*more than \\d+ digits"):
        read_yaml(f)
    f.write_bytes(b'seed: 1\nname: "\xff"\n')
    with pytest.raises(ParameterError, match=r"b'\\xff' at line 2 .*not UTF-8"):
        read_yaml(f)


def test_sweep_configs_refuse_huge_ints_bad_bytes_and_tags(tmp_path):
    toy = (paths.SWEEP_CONFIGS / "toy.yaml").read_text()
    cases = {
        "digits": (toy.replace("steps: 3,", f"steps: {'7' * 5000},"), "more than \\d+ digits"),
        "binary": (toy.replace("sleep_s: 0.0", "sleep_s: !!binary eA=="), "type bytes"),
        "nan": (toy.replace("sleep_s: 0.0", "sleep_s: .nan"), "not a finite number"),
    }
    for name, (text, message) in cases.items():
        f = tmp_path / f"{name}.yaml"
        f.write_text(text)
        with pytest.raises(ParameterError, match=message):
            load_config(f)
    f = tmp_path / "bytes.yaml"
    f.write_bytes(toy.encode().replace(b"Deterministic", b"Determin\xffistic"))
    with pytest.raises(ParameterError, match="not UTF-8"):
        load_config(f)


@pytest.fixture(scope="module")
def hallucination():
    return read_notebook(paths.NOTEBOOKS / "hallucination.ipynb")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seeds": []}, "'seeds' .* is empty"),
        ({"seeds": [0, 0]}, r"'seeds' .* repeats \[0\]"),
        ({"seeds": [0, -3]}, "'seeds' .* in 0..4294967295, got -3"),
        ({"seed": -1}, "'seed' .* must be in 0..4294967295, got -1"),
        ({"seed": 2**40}, "'seed' .* must be in 0..4294967295"),
        ({"threshold": float("nan")}, "'threshold' .* nan is not a finite number"),
        ({"hf_model": "a\ud800b"}, "'hf_model' .* lone surrogate"),
    ],
)
def test_seeds_nan_and_surrogates_are_refused_before_work(hallucination, overrides, message):
    with pytest.raises(ParameterError, match=message):
        resolve(hallucination, overrides=overrides)


def test_the_cli_prints_one_line_for_a_bad_value(capsys):
    assert main(["run", "notebooks/hallucination.ipynb", "-p", "seeds", "[]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seeds" in err


def test_probabilities_are_checked():
    from studio.studies import multi_image as mi

    with pytest.raises(ParameterError, match=r"p_nothing must be a probability in \[0, 1\), got 1.5"):
        mi.check_knobs(p_nothing=1.5, galleries=[50])
    with pytest.raises(ParameterError, match="p_nothing"):
        mi.check_knobs(p_nothing=1.0, galleries=[50])
    mi.check_knobs(p_nothing=0.25, galleries=[50])
    assert check_probability("p", 1) == 1.0
    for bad in (float("nan"), -0.1, True, "0.5"):
        with pytest.raises(ParameterError):
            check_probability("p", bad)


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_is_one_line():
    from studio.workers import WorkerDied, spawn_pool

    with pytest.raises(WorkerDied, match="a worker process died.*rerun to resume"):
        with spawn_pool(1) as pool:
            pool.submit(_die).result(timeout=60)


def test_a_read_only_figures_folder_is_refused_before_any_notebook_runs(monkeypatch, tmp_path):
    import tempfile

    from studio.errors import PathError
    from studio.workbench import regenerate

    regenerate.writable_or_refuse([tmp_path])  # an ordinary folder passes
    ran = []
    monkeypatch.setattr(regenerate, "run_notebook", lambda *a, **k: ran.append(a))

    def refuse(*a, dir=None, **k):  # what a folder this user may not write does (root ignores chmod)
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(PathError, match="figures is not writable"):
        regenerate.run_figures("smoke", only=["quickstart"])
    assert ran == []
