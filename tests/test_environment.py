"""environment.yml (conda) and pyproject.toml (pip) declare the same dependencies."""

import re

import tomllib
import yaml

from studio import paths

NAMED_BY_USERS = {
    "jupyterlab",
    "torch",
    "transformers",
    "scipy",
    "matplotlib",
    "seaborn",
    "umap-learn",
    "papermill",
    "lightning",
}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_conda_and_pip_declare_the_same_packages():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    pip_reqs = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_reqs = dict(_split(r) for r in conda_pip if not r.startswith("-e"))
    assert conda_reqs == pip_reqs
    assert NAMED_BY_USERS <= set(pip_reqs)


def test_torch_is_pinned_to_the_cpu_build_on_disk():
    # A looser torch requirement makes pip fetch a multi-GB CUDA build on a CPU machine.
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert "torch==2.13.0" in (paths.ROOT / "constraints.txt").read_text()


def test_readme_starts_with_the_two_commands_and_ci_calls_the_test_one():
    readme = (paths.ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "make figures" in head and "make test" in head
    assert re.search(r"^make test\b", (paths.ROOT / ".ci" / "run").read_text(), re.M)


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in (paths.ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_the_lock_pins_every_declared_package_and_the_cpu_torch():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    declared = {_split(r)[0] for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    pins = _lock_pins()
    assert declared <= set(pins), f"not pinned in requirements.lock: {sorted(declared - set(pins))} (make lock)"
    assert pins["torch"].startswith("2.13.0")


def test_the_installed_packages_are_the_locked_ones():
    from importlib import metadata

    pins = _lock_pins()
    for name in ("torch", "lightning", "numpy", "scipy", "transformers", "scikit-learn", "pandas"):
        assert metadata.version(name) == pins[name], f"{name}: installed {metadata.version(name)}, locked {pins[name]}"


def test_setup_stops_on_a_failed_install():
    # `|| true` after pip once hid a failed install; the Makefile must keep pip's exit status.
    makefile = (paths.ROOT / "Makefile").read_text()
    assert "pipefail" in makefile and "-r requirements.lock" in makefile
    assert not re.search(r"pip install[^\n]*\|\| true\s*$", makefile, re.M)
