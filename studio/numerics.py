"""Which numerical path the CPU kernels take: `portable` (the same bytes on any x86-64 machine with
AVX2) or `fast` (each library picks the best kernels of the processor it runs on).

PyTorch's vectorised kernels (ATen), MKL, oneDNN and OpenBLAS (numpy, scipy, scikit-learn) choose
their code path at run time from what the processor offers (AVX2, AVX-512, AMX), and the rounding
differs between paths: the same seed then gives other bytes on another processor. Portable mode pins
every one of them to its AVX2 path with their documented switches:

    ATEN_CPU_CAPABILITY=avx2     PyTorch's own CPU kernels
    MKL_CBWR=AVX2                MKL's conditional numerical reproducibility (Intel and AMD alike)
    ONEDNN_MAX_CPU_ISA=AVX2      oneDNN (PyTorch's Linear/conv kernels on the CPU)
    OPENBLAS_CORETYPE=Haswell    OpenBLAS's kernel family (numpy, scipy, scikit-learn)

The thread count matters as much: a reduction split over 16 threads adds in another order than one
split over 2, and MKL's reproducibility holds only for a fixed count. So portable mode also fixes the
threads of every library that does not ask for its own (a training cell that runs on one thread says
so with `studio.repro.cpu_threads`, which still wins):

    OMP_NUM_THREADS=2  MKL_NUM_THREADS=2  OPENBLAS_NUM_THREADS=2   (THREADS: the committed figures' count)

A machine with more cores then uses two of them for a notebook's own computing (sweeps still run one
cell per worker); fast mode uses them all.

They are read when each library loads, so they are set in the environment of every process that
computes: `import studio` sets them for its own process (before numpy loads) and every notebook
kernel, sweep worker and submitit job inherits them. On an AVX2 machine the pinned path is the native
one (no cost); on AVX-512/AMX machines it was measured 20-35 % slower per training step. A processor
without AVX2 and FMA cannot take the path: the mode is then recorded as `fast` with the reason.

    STUDIO_NUMERICS=fast studio figures      # or `studio figures --fast-numerics`: native kernels
"""

from __future__ import annotations

import os
import platform

ENV_VAR = "STUDIO_NUMERICS"
MODES = ("portable", "fast")
DEFAULT = "portable"
PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}
THREADS = 2  # the thread count the committed figures were computed with (a 2-core machine's default)
PINS.update({k: str(THREADS) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
_REASON = "STUDIO_NUMERICS_REASON"  # why portable was asked for but could not be taken


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def portable_supported() -> tuple[bool, str]:
    """(True, "") when this machine can take the pinned AVX2 path, else (False, why not)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False, f"{platform.machine()} is not x86-64"
    flags = _cpu_flags()
    missing = [f for f in ("avx2", "fma") if f not in flags]
    if flags and missing:
        return False, f"the processor lacks {', '.join(missing)}"
    return True, ""


def requested(mode: str | None = None) -> str:
    mode = mode or os.environ.get(ENV_VAR) or DEFAULT
    if mode not in MODES:
        from studio.errors import ParameterError

        raise ParameterError(f"{ENV_VAR}={mode!r}: expected one of {list(MODES)}")
    return mode


def apply(mode: str | None = None) -> str:
    """Set this process's environment (inherited by every child) for `mode`; return the mode in effect.

    portable: the pins above, overriding what the environment had. fast: the pins removed where they
    hold our values (a user's own settings stay). Call before torch is imported to affect this process.
    """
    mode = requested(mode)
    if mode == "portable":
        ok, why = portable_supported()
        if ok:
            os.environ.update(PINS)
            os.environ[ENV_VAR] = "portable"
            os.environ.pop(_REASON, None)
            _pin_loaded_threads()
            return "portable"
        os.environ[_REASON] = f"portable numerics unavailable: {why}"
    for key, value in PINS.items():
        if os.environ.get(key) == value:
            del os.environ[key]
    os.environ[ENV_VAR] = "fast"
    return "fast"


def _pin_loaded_threads() -> None:
    """Libraries loaded before `import studio` read their thread count already: set it directly."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(THREADS)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(THREADS)  # kept (not a context manager): numpy's BLAS from here on


def mode() -> str:
    """The mode in effect in this process."""
    return os.environ.get(ENV_VAR, "fast")


def key() -> dict:
    """What changes numbers besides the code: part of every cache key. In fast mode the processor and
    any capability switches set by hand are part of it too, since its results depend on them."""
    if mode() == "portable":
        return {"numerics": "portable"}
    return {"numerics": "fast", "cpu": cpu_model(), "switches": {k: os.environ.get(k) for k in PINS}}


def describe() -> dict:
    """For provenance and the MANIFEST: mode, CPU model, torch's CPU capability, the switches set."""
    info = {
        "numerics": mode(),
        "cpu_model": cpu_model(),
        "numerics_switches": {k: os.environ[k] for k in PINS if k in os.environ},
    }
    if os.environ.get(_REASON):
        info["numerics_note"] = os.environ[_REASON]
    info["torch_cpu_capability"] = torch_cpu_capability()
    return info


def torch_cpu_capability() -> str | None:
    """What torch's ATen kernels use here: asked of torch when it is loaded, else derived by ATen's
    own rule (the best of DEFAULT, AVX2, AVX512 that the processor has, capped by ATEN_CPU_CAPABILITY),
    so that writing provenance never costs a torch import (seconds)."""
    import sys

    if "torch" in sys.modules:
        try:
            return sys.modules["torch"].backends.cpu.get_cpu_capability()
        except Exception:  # torch too old to say
            return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    flags = _cpu_flags()
    levels = ["DEFAULT"]
    if {"avx2", "fma"} <= flags:
        levels.append("AVX2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            levels.append("AVX512")
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "").upper()
    return cap if cap in levels else levels[-1]
