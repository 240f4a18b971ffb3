"""A sweep config: read a YAML file, check every key, apply a profile, expand into run configs.

    config = load_config("experiments/sweeps/visual_context.yaml", profile="smoke")   # or just "visual_context"
    runs = expand(config)   # every run's full config (a dict), in a deterministic order

The file format is described in the package docstring (studio/sweep/__init__.py). Every refusal is a
ParameterError naming the offending key and the valid ones: the CLI prints it as one line.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from studio import paths
from studio.errors import ParameterError
from studio.plain import check_plain, read_yaml
from studio.repro import stable_hash

TOP_KEYS = (
    "name",
    "description",
    "target",
    "base",
    "grid",
    "seeds",
    "exclude",
    "include",
    "trainer",
    "submitit",
    "workers",
    "profiles",
)
PROFILE_KEYS = ("target", "base", "grid", "seeds", "exclude", "include", "trainer", "submitit", "workers")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FLOATLIKE_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _bad(message: str) -> ParameterError:
    return ParameterError(message)


@dataclass(frozen=True)
class SweepConfig:
    """A sweep config with its profile applied (see the package docstring for the file format)."""

    name: str
    target: str
    base: dict
    grid: dict = field(default_factory=dict)
    seeds: list | None = None
    exclude: list = field(default_factory=list)
    include: list = field(default_factory=list)
    trainer: dict | None = None
    submitit: dict = field(default_factory=dict)
    workers: int = 1
    description: str = ""
    profile: str | None = None  # the profile applied, None when the file has no profile of that name
    source: str | None = None  # the file it was read from

    @property
    def profile_name(self) -> str:
        return self.profile or "default"

    def default_out(self) -> Path:
        """paths.SWEEPS/NAME/PROFILE (SWEEPS may be moved by STUDIO_SWEEPS, a root the user configured)."""
        return paths.SWEEPS / self.name / self.profile_name


def config_path(path: str | os.PathLike) -> Path:
    """A sweep config file: a path, or a bare name looked up as paths.SWEEP_CONFIGS/NAME.yaml."""
    text = os.fspath(path)
    if os.sep not in text and "/" not in text and not text.endswith((".yaml", ".yml")):
        candidate = paths.SWEEP_CONFIGS / f"{text}.yaml"
        if candidate.is_file():
            return candidate
    return paths.input_path(path)


def load_config(path: str | os.PathLike, profile: str | None = None) -> SweepConfig:
    """Read a sweep config YAML and apply `profile` (default: the file's `default` profile, if any)."""
    p = config_path(path)
    data = read_yaml(p, str(path))
    return parse_config(data, profile, source=paths.relative(p))


def parse_config(data: dict, profile: str | None = None, source: str | None = None) -> SweepConfig:
    """Check a sweep config mapping (as read from YAML) and apply `profile`."""
    where = source or "sweep config"
    if not isinstance(data, dict):
        raise _bad(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    check_plain(data, where)  # every value reaches a target and the run key: plain, finite, acyclic
    _refuse_unknown(data, TOP_KEYS, where)
    for key in ("name", "target", "base"):
        if key not in data:
            raise _bad(f"{where}: missing required key {key!r}")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise _bad(f"{where}: 'profiles' must be a mapping of profile names to overrides")
    if profile is None and "default" in profiles:
        profile = "default"
    if profile is not None and profile not in profiles and profile != "default":
        raise _bad(f"{where}: no profile {profile!r}; profiles: {', '.join(profiles) or 'none'}")
    # Every profile is checked, not only the one asked for: a typo in `paper` shows up in CI's smoke run.
    chosen = None
    for name in profiles:
        cfg = _check(_apply_profile(data, name, where), name, source, f"{where} (profile {name!r})")
        if name == profile:
            chosen = cfg
    return chosen or _check(_apply_profile(data, None, where), None, source, where)


def _apply_profile(data: dict, profile: str | None, where: str) -> dict:
    merged = {k: copy.deepcopy(v) for k, v in data.items() if k != "profiles"}
    if profile is None:
        return merged
    overrides = data["profiles"][profile] or {}
    pwhere = f"{where}, profile {profile!r}"
    if not isinstance(overrides, dict):
        raise _bad(f"{pwhere}: must be a mapping of overrides")
    _refuse_unknown(overrides, PROFILE_KEYS, pwhere)
    for key, value in overrides.items():
        if key == "base":
            if not isinstance(value, dict):
                raise _bad(f"{pwhere}: 'base' must be a mapping")
            merged["base"] = _deep_merge(merged.get("base") or {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check(d: dict, profile, source, where) -> SweepConfig:
    name = d["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _bad(f"{where}: name must be a folder-safe string (letters, digits, _ . -), got {name!r}")
    target = d["target"]
    if not isinstance(target, str) or not re.match(r"^[\w.]+:[\w]+$", target):
        raise _bad(f"{where}: target must be 'module:function', got {target!r}")
    base = d["base"]
    if not isinstance(base, dict) or not base:
        raise _bad(f"{where}: base must be a non-empty mapping (a run's full default config)")
    _check_values(base, f"{where}: base")

    grid = d.get("grid") or {}
    if not isinstance(grid, dict):
        raise _bad(f"{where}: grid must be a mapping of config keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _bad(f"{where}: grid[{key!r}] must be a non-empty list, got {values!r}")
    _refuse_unknown(grid, base, f"{where}: grid", what="config key", valid_name="base keys")
    _check_values(grid, f"{where}: grid")

    seeds = d.get("seeds")
    if seeds is not None:
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        ):
            raise _bad(f"{where}: seeds must be a non-empty list of ints, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise _bad(f"{where}: seeds has repeats: {seeds!r}")
        if "seed" in grid:
            raise _bad(f"{where}: 'seed' is both in grid and seeds; use one")

    cells = {}
    for key in ("exclude", "include"):
        entries = d.get(key) or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) and e for e in entries):
            raise _bad(f"{where}: {key} must be a list of non-empty mappings, got {entries!r}")
        valid = dict.fromkeys([*base, *grid, "seed"])
        for i, entry in enumerate(entries):
            _refuse_unknown(
                entry, valid, f"{where}: {key}[{i}]", what="config key", valid_name="base and grid keys and seed"
            )
            _check_values(entry, f"{where}: {key}[{i}]")
        cells[key] = copy.deepcopy(entries)

    trainer = d.get("trainer")
    if trainer is not None and not isinstance(trainer, dict):
        raise _bad(f"{where}: trainer must be a mapping (accelerator, devices, strategy, num_nodes)")
    submitit = d.get("submitit") or {}
    if not isinstance(submitit, dict):
        raise _bad(f"{where}: submitit must be a mapping of submitit options")
    workers = d.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise _bad(f"{where}: workers must be an int >= 1 (runs at once with the local launcher), got {workers!r}")
    description = d.get("description") or ""
    return SweepConfig(
        workers=workers,
        name=name,
        target=target,
        base=copy.deepcopy(base),
        grid=copy.deepcopy(grid),
        seeds=list(seeds) if seeds is not None else None,
        exclude=cells["exclude"],
        include=cells["include"],
        trainer=copy.deepcopy(trainer),
        submitit=copy.deepcopy(submitit),
        description=str(description),
        profile=profile,
        source=source,
    )


def _refuse_unknown(d: dict, valid, where: str, what: str = "key", valid_name: str = "valid keys") -> None:
    for key in d:
        if key not in valid:
            raise _bad(f"{where}: unknown {what} {key!r}; {valid_name}: {', '.join(map(str, valid))}")


def _check_values(d: dict, where: str) -> None:
    """Values must be JSON-able (they are hashed and written to config.json); catch YAML's 1e-3."""
    try:
        json.dumps(d, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _bad(f"{where}: values must be plain YAML scalars, lists and mappings ({e})") from e

    def walk(value, key):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and _FLOATLIKE_RE.match(value):
            mantissa, exponent = f"{float(value):e}".split("e")
            mantissa = mantissa.rstrip("0") + ("0" if mantissa.rstrip("0").endswith(".") else "")
            raise _bad(
                f"{where}: {key} = {value!r} is a string to YAML; for a float write it with a dot "
                f"and a signed exponent: {mantissa}e{int(exponent):+d}"
            )

    walk(d, None)


def _deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------------
# Expansion


def expand(config: SweepConfig) -> list[dict]:
    """Every run's full config, in a deterministic order: grid cells (last grid key fastest) x seeds,
    then include cells x seeds. A grid run whose config matches every key of an exclude entry is
    dropped (include cells are kept); duplicates (same config) are kept once."""
    keys = list(config.grid)
    grid_cells = [dict(zip(keys, values)) for values in product(*(config.grid[k] for k in keys))]
    runs, seen = [], set()
    for cell, from_grid in [*((c, True) for c in grid_cells), *((c, False) for c in config.include)]:
        seeds = [None] if (config.seeds is None or "seed" in cell) else config.seeds
        for seed in seeds:
            run = _deep_merge(config.base, cell)
            if seed is not None:
                run["seed"] = seed
            if from_grid and any(_matches(run, ex) for ex in config.exclude):
                continue
            if config.trainer is not None:
                run["trainer"] = _deep_merge(run.get("trainer") or {}, config.trainer)
            key = stable_hash(run, length=12)
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs


def _matches(cell: dict, pattern: dict) -> bool:
    return all(k in cell and cell[k] == v for k, v in pattern.items())
