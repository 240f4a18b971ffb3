"""Every notebook: paired with its py:percent text without drift, committed clean, opening the way
CONTRIBUTING says (title, question, parameters, then a markdown cell before each figure), with
smoke/default/paper profiles; and (slow) each one runs end to end under its smoke profile.

Notebooks are discovered at collection time, so a new study is checked as soon as it is added.
"""

from __future__ import annotations

import ast
import json
import re

import jupytext
import nbformat
import pytest
import yaml

from studio import paths
from studio.workbench import notebooks
from studio.workbench.params import parse_parameters, read_notebook, resolve

PROFILES = ("smoke", "default", "paper")
PY_FILES = sorted(paths.NOTEBOOKS.glob("*.py"))
IPYNB_FILES = sorted(paths.NOTEBOOKS.glob("*.ipynb"))
NAMES = sorted({p.stem for p in PY_FILES} | {p.stem for p in IPYNB_FILES})


def _ordered_names() -> list[str]:
    """Notebooks that read another's outputs (`after:`) come after it, so the slow runs go in order."""
    after = {}
    for name in NAMES:
        try:
            after[name] = list(
                (yaml.safe_load((paths.EXPERIMENTS / f"{name}.yaml").read_text()) or {}).get("after") or []
            )
        except (OSError, yaml.YAMLError, AttributeError):
            after[name] = []
    ordered: list[str] = []

    def visit(name, stack=()):
        if name in ordered or name in stack or name not in after:
            return
        for dep in after[name]:
            visit(dep, stack + (name,))
        ordered.append(name)

    for name in NAMES:
        visit(name)
    return ordered


def _read(name: str):
    path = paths.NOTEBOOKS / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"notebooks/{name}.py has no notebooks/{name}.ipynb: run `studio sync`")
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert "quickstart" in NAMES


def test_every_text_notebook_is_paired_and_in_sync():
    py, ipynb = {p.stem for p in PY_FILES}, {p.stem for p in IPYNB_FILES}
    assert not py - ipynb, f"no .ipynb for {sorted(py - ipynb)}: run `studio sync`"
    assert not ipynb - py, f"no py:percent source for {sorted(ipynb - py)}"
    drifted = notebooks.sync_all(check=True)
    assert not drifted, f"out of sync with their .py (or saved with outputs): {drifted}; run `studio sync`"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_clean(name):
    nb = _read(name)
    assert nb.metadata.get("kernelspec", {}).get("name") == paths.KERNEL_NAME
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {i} was committed with outputs"


@pytest.mark.parametrize("name", NAMES)
def test_saving_from_lab_rewrites_the_same_text(name):
    """Lab's jupytext contents manager writes the .py from the .ipynb on save: it must be the committed
    .py byte for byte, or saving an untouched notebook from Lab makes a diff."""
    py = paths.NOTEBOOKS / f"{name}.py"
    assert jupytext.writes(_read(name), "py:percent") == py.read_text(), (
        f"{paths.relative(py)} is not in jupytext's own py:percent layout: run `jupytext --to py:percent` on the .ipynb"
    )


def structure_problems(nb) -> list[str]:
    """What keeps a notebook from opening cleanly (CONTRIBUTING): empty when all is well."""
    cells, problems = nb.cells, []
    # Cell 1: a title and one paragraph on the question.
    lines = cells[0].source.strip().splitlines() if cells else []
    if not cells or cells[0].cell_type != "markdown":
        problems.append("the first cell must be markdown: a title and the question")
    elif not (lines and lines[0].startswith("# ")):
        problems.append("the first cell must start with a '# ' title")
    elif not any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines[1:]):
        problems.append("the first cell needs a paragraph on the question under its title")
    # The parameters cell: right after the title, literals only (parse_parameters refuses the rest), a seed.
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if tagged != [1]:
        problems.append(f"exactly one cell tagged parameters, the second one (found at {tagged})")
    else:
        try:
            params = parse_parameters(cells[1].source)
            if "seed" not in params or params["seed"].type != "int":
                problems.append("the parameters cell needs `seed: int = ...`")
        except ValueError as e:
            problems.append(f"parameters cell: {e}")
    # Code: no helper functions (they belong in studio/); a markdown cell before each figure says what it shows.
    markdown_since_figure = True
    for i, cell in enumerate(cells[2:], start=2):
        if cell.cell_type == "markdown":
            if not cell.source.strip():
                problems.append(f"cell {i}: empty markdown")
            markdown_since_figure = True
            continue
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_strip_magics(cell.source))
        except SyntaxError as e:
            problems.append(f"cell {i} does not parse: {e}")
            continue
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        if defs:
            problems.append(f"cell {i} defines {defs}: put helpers in the studio package")
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == "save_figure"):
            if not markdown_since_figure:
                problems.append(f"cell {i} saves a figure with no markdown cell since the previous figure")
            if not any(k.arg == "caption" for k in call.keywords):
                problems.append(f"cell {i}: save_figure(..., caption=...) missing")
            markdown_since_figure = False
    return problems


@pytest.mark.parametrize("name", NAMES)
def test_notebook_opens_cleanly(name):
    problems = structure_problems(_read(name))
    assert not problems, f"notebooks/{name}: " + "; ".join(problems)


def test_structure_check_finds_problems():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    good = [
        md("# Title\n\nThe question."),
        code("seed: int = 0", metadata={"tags": ["parameters"]}),
        md("## A figure"),
        code("save_figure(fig, 'x_a', df, caption='a')"),
    ]
    assert structure_problems(nbformat.v4.new_notebook(cells=good)) == []
    bad = [
        md("Title without hash"),
        code("seed = 0\nn = len([1])", metadata={"tags": ["parameters"]}),
        code("def helper():\n    pass"),
        md("## two figures, one markdown"),
        code("save_figure(fig, 'x_a', df, caption='a')\nsave_figure(fig, 'x_b', df)"),
    ]
    found = " | ".join(structure_problems(nbformat.v4.new_notebook(cells=bad)))
    for expected in ("'# ' title", "parameters cell", "defines ['helper']", "no markdown cell since", "caption"):
        assert expected in found, (expected, found)


def _name(func) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _strip_magics(source: str) -> str:
    return "\n".join("" if re.match(r"\s*[%!]", ln) else ln for ln in source.splitlines())


@pytest.mark.parametrize("name", NAMES)
def test_profiles_exist_and_validate(name):
    profile_file = paths.EXPERIMENTS / f"{name}.yaml"
    assert profile_file.exists(), f"no {paths.relative(profile_file)} (profiles smoke, default, paper)"
    spec = read_notebook(paths.NOTEBOOKS / f"{name}.ipynb")  # refuses unknown keys and ill-typed values
    missing = [p for p in PROFILES if p not in spec.profiles]
    assert not missing, f"{paths.relative(profile_file)} lacks profiles {missing}"
    for profile in PROFILES:
        params = resolve(spec, profile)
        assert set(params) == set(spec.params)
    assert set(spec.after) <= set(NAMES), f"after: names unknown notebooks {sorted(set(spec.after) - set(NAMES))}"


@pytest.mark.slow
@pytest.mark.parametrize("name", _ordered_names())
def test_notebook_runs_under_its_smoke_profile(name):
    from studio.workbench.runner import run_notebook

    result = run_notebook(paths.NOTEBOOKS / f"{name}.ipynb", "smoke", progress=False)
    run = result.run_dir
    assert run.parent.parent == paths.RUNS and run.parent.name == name
    executed = nbformat.read(run / f"{name}.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code if "injected-parameters" not in c.metadata.get("tags", []))
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs {[(e.ename, e.evalue) for e in errors]}"

    spec = read_notebook(paths.NOTEBOOKS / f"{name}.ipynb")
    assert yaml.safe_load((run / "params.yaml").read_text()) == resolve(spec, "smoke")
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["status"] == "ok" and prov["profile"] == "smoke"
    assert prov["seed"] == resolve(spec, "smoke")["seed"]
    assert "commit" in prov["git"] and "dirty" in prov["git"]
    if (paths.ROOT / ".git").exists():
        assert prov["git"]["commit"], "provenance lacks the git commit"
    assert prov["packages"].get("torch"), "provenance lacks package versions"
    print(f"\n{name}: smoke run {prov['seconds']} s -> {paths.relative(run)}")

    index_file = run / "figures" / "figures.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    assert any(i["kind"] == "figure" for i in index.values()), f"{name} saved no figure with save_figure"
    for fig_name, info in index.items():
        exts = ("png", "pdf", "csv") if info["kind"] == "figure" else ("csv",)
        for ext in exts:
            f = run / "figures" / f"{fig_name}.{ext}"
            assert f.exists() and f.stat().st_size > 0, f"missing {paths.relative(f)}"
        if info["kind"] == "figure":
            assert info["caption"].strip(), f"figure {fig_name} has no caption"
