"""Parameter cells, type checking and profile merging (no kernel involved)."""

import pytest
import yaml

from studio import paths
from studio.workbench.params import (
    ParameterError,
    check_type,
    parse_cli_value,
    parse_parameters,
    read_notebook,
    resolve,
)

CELL = """
seed: int = 0            # the seed
grids: list[int] = [1, 2]
rate = 0.5
name: str | None = None  # optional
mode: Literal["a", "b"] = "a"
"""


def test_parse_parameters_reads_types_defaults_and_help():
    params = parse_parameters(CELL)
    assert list(params) == ["seed", "grids", "rate", "name", "mode"]
    assert params["seed"].type == "int" and params["seed"].default == 0 and params["seed"].help == "the seed"
    assert params["rate"].type == "float"  # inferred from the default
    assert params["name"].type == "str | None"


def test_parameters_cell_must_be_literal_assignments():
    with pytest.raises(ParameterError, match="not `name = literal`"):
        parse_parameters("import os\nseed = 0\n")
    with pytest.raises(ParameterError, match="must be a literal"):
        parse_parameters("seed = int('3')\n")
    with pytest.raises(ParameterError, match="is not a int"):
        parse_parameters("seed: int = 'zero'\n")


@pytest.mark.parametrize(
    "value,type_text,ok",
    [
        (3, "int", True),
        (True, "int", False),
        (3.0, "int", False),
        (3, "float", True),
        ("x", "float", False),
        ([1, 2], "list[int]", True),
        ([1, "a"], "list[int]", False),
        (None, "str | None", True),
        ("p", "Optional[str]", True),
        (1, "str | None", False),
        ("b", 'Literal["a", "b"]', True),
        ("c", 'Literal["a", "b"]', False),
        ({"a": 1}, "dict", True),
        ([1, 2], "tuple[int, int]", True),
        ([1, 2, 3], "tuple[int, int]", False),
        (1, "any", True),
    ],
)
def test_check_type(value, type_text, ok):
    assert check_type(value, type_text) is ok


def test_cli_values_arrive_typed():
    assert parse_cli_value("8") == 8 and parse_cli_value("0.5") == 0.5
    assert parse_cli_value("[1, 2, 4]") == [1, 2, 4] and parse_cli_value("null") is None
    assert parse_cli_value("true") is True and parse_cli_value("notes.csv") == "notes.csv"


def test_profile_merging_order_and_refusals(tmp_path):
    spec = read_notebook(paths.NOTEBOOKS / "quickstart.ipynb")
    assert {"smoke", "default", "paper"} <= set(spec.profiles)
    merged = resolve(spec, "smoke")
    assert merged["n_splits"] == spec.profiles["smoke"]["n_splits"] and merged["seed"] == 0
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"n_splits": 3, "seed": 4}))
    merged = resolve(spec, "smoke", files=[f], overrides={"seed": 9})
    assert merged["n_splits"] == 3 and merged["seed"] == 9  # -p beats -f beats the profile
    with pytest.raises(ParameterError, match="no profile 'huge'.*smoke"):
        resolve(spec, "huge")
    with pytest.raises(ParameterError, match="unknown parameter 'n_split'.*valid parameters: seed, grids"):
        resolve(spec, None, overrides={"n_split": 3})
    with pytest.raises(ParameterError, match="must be int"):
        resolve(spec, None, overrides={"n_splits": "three"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ParameterError, match="must hold a mapping"):
        resolve(spec, None, files=[bad])


def test_malformed_profile_file_is_refused(tmp_path, monkeypatch):
    nb_dir, exp_dir = tmp_path / "notebooks", tmp_path / "experiments"
    nb_dir.mkdir(), exp_dir.mkdir()
    (nb_dir / "quickstart.ipynb").write_bytes((paths.NOTEBOOKS / "quickstart.ipynb").read_bytes())
    monkeypatch.setattr(paths, "EXPERIMENTS", exp_dir)
    (exp_dir / "quickstart.yaml").write_text("profiles:\n  smoke:\n    n_spltis: 2\n")
    with pytest.raises(ParameterError, match="unknown parameter 'n_spltis'"):
        read_notebook(nb_dir / "quickstart.ipynb")
    (exp_dir / "quickstart.yaml").write_text("profils: {}\n")
    with pytest.raises(ParameterError, match="unknown keys \\['profils'\\]"):
        read_notebook(nb_dir / "quickstart.ipynb")


def test_a_parameter_file_that_is_a_folder_is_named_as_such(tmp_path):
    from studio.workbench.params import ParameterError, load_param_file

    with pytest.raises(ParameterError, match="is a folder; give a YAML file"):
        load_param_file(tmp_path)


def test_figures_only_accumulates_over_repeated_flags():
    from studio.workbench.cli import build_parser

    args = build_parser().parse_args(["figures", "--only", "a", "b", "--only", "c"])
    assert args.only == ["a", "b", "c"]
