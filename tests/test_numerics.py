"""Portable numerics: the same seed gives the same bytes whatever kernels the host offers."""

import json
import os
import subprocess
import sys

import pytest

from studio import numerics

# What a weaker (or different) host would make each library pick; portable mode must override it.
FORCED_DOWN = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OPENBLAS_CORETYPE": "Nehalem",
    # and another core count
    "OMP_NUM_THREADS": "3",
    "MKL_NUM_THREADS": "3",
    "OPENBLAS_NUM_THREADS": "3",
}
CELL = (
    "import json, pathlib, sys; import studio; from studio.engine import train_cell; "
    "m = train_cell(dict(encoder_steps=15, train_videos=128, val_videos=64, steps=12, batch_size=32, width=32, "
    "heads=2, frames=4, tokens_per_frame=4, tasks=['retrieval', 'spatial']), pathlib.Path(sys.argv[1])); "
    "print(json.dumps({k: m[k] for k in ('val_loss', 'train_loss', 'val_acc')}))"
)


def test_apply_pins_and_unpins_and_the_cache_key_follows(monkeypatch):
    for k in numerics.PINS:
        monkeypatch.setenv(k, FORCED_DOWN[k])
    monkeypatch.setenv(numerics.ENV_VAR, "portable")
    if not numerics.portable_supported()[0]:
        pytest.skip("this processor cannot take the portable path")
    assert numerics.apply() == "portable"
    assert {k: os.environ[k] for k in numerics.PINS} == numerics.PINS  # the forced-down values are replaced
    portable_key = numerics.key()
    assert numerics.apply("fast") == "fast" and not any(k in os.environ for k in numerics.PINS)
    assert numerics.key()["numerics"] == "fast" and numerics.key() != portable_key
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # a user's own switch stays, and keys the cache
    assert numerics.apply("fast") == "fast" and os.environ["ATEN_CPU_CAPABILITY"] == "default"
    assert numerics.key()["switches"]["ATEN_CPU_CAPABILITY"] == "default"
    with pytest.raises(ValueError, match="STUDIO_NUMERICS='quick'"):
        numerics.apply("quick")
    numerics.apply("portable")


def test_portable_mode_fixes_the_thread_count_even_when_torch_and_numpy_came_first():
    code = (
        "import numpy, torch; torch.set_num_threads(3); import studio; from threadpoolctl import threadpool_info; "
        "print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))"
    )
    env = {**os.environ, **FORCED_DOWN, numerics.ENV_VAR: "portable"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    if not numerics.portable_supported()[0]:
        pytest.skip("this processor cannot take the portable path")
    assert out.stdout.split() == [str(numerics.THREADS), f"[{numerics.THREADS}]"]


def test_provenance_names_the_mode_the_cpu_and_torchs_capability():
    from studio.repro import environment

    env = environment()
    assert env["numerics"] in numerics.MODES and env["cpu_model"]
    assert env["torch_cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", None)


def _cell(tmp_path, name: str, mode: str, forced: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINS}
    env.update(FORCED_DOWN if forced else {})
    env.update({numerics.ENV_VAR: mode, "STUDIO_CACHE": str(tmp_path / f"cache-{mode}")})
    out = subprocess.run(
        [sys.executable, "-c", CELL, str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_portable_bytes_do_not_depend_on_the_hosts_kernels_and_fast_ones_do(tmp_path):
    if not numerics.portable_supported()[0]:
        pytest.skip("this processor cannot take the portable path")
    native = _cell(tmp_path, "pn", "portable", forced=False)
    forced = _cell(tmp_path, "pf", "portable", forced=True)
    assert native == forced  # every digit of the metrics a figure is made from
    # Without portable mode the forced-down kernels show (on this AVX2 host the portable path is the
    # native one; on an AVX-512 host fast-native would differ too): the test can fail.
    fast_forced = _cell(tmp_path, "ff", "fast", forced=True)
    assert fast_forced != native
