"""A notebook's parameters: read from its `parameters` cell, merged from profiles, checked by type.

The parameters cell is plain Python, one assignment per line, optionally annotated and commented:

    seed: int = 0                   # random seed for everything
    laws: list[str] = ["additive"]  # law families to compare
    csv: str | None = None          # measurements; None = our own sweep

Values from profiles (experiments/NAME.yaml), from `-f file.yaml` and from `-p KEY VALUE` (parsed as
YAML) are checked against the annotation (or, without one, the type of the default) before any
kernel starts. Unknown names are refused with the list of valid ones. Every value must be plain
(studio.plain: null, booleans, finite numbers, strings, lists and mappings of them) all the way down,
and the project's seed parameters follow one rule (SEED_RANGE): `seed` is an int in it, `seeds` a
non-empty list of distinct ints in it.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import paths
from studio.errors import ParameterError  # noqa: F401  (raised here; re-exported for callers)
from studio.plain import check_plain, load_yaml_text, read_yaml

# numpy's and torch's generators take seeds in [0, 2**32); a study's seed must fit both.
SEED_RANGE = (0, 2**32 - 1)


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # the annotation as written, or the inferred type name; "any" when unknowable
    default: Any
    help: str = ""


@dataclass
class NotebookSpec:
    """A notebook, its parameters and its profiles (experiments/NAME.yaml)."""

    name: str
    path: Path
    params: dict[str, Param]
    profiles: dict[str, dict]
    figures: bool = False  # registered for `studio figures`
    after: list[str] = field(default_factory=list)  # notebooks whose outputs this one reads

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params.values()}


PROFILE_KEYS = {"figures", "after", "profiles", "description"}


def parameters_cell(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise ParameterError("the notebook has no cell tagged 'parameters'")


def parse_parameters(source: str) -> dict[str, Param]:
    """Parse a parameters cell; every statement must be `name[: type] = literal`."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ParameterError(f"the parameters cell does not parse: {e}") from e
    comments = _line_comments(source)
    params: dict[str, Param] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation, value = node.target.id, ast.unparse(node.annotation), node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation, value = node.targets[0].id, None, node.value
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        else:
            raise ParameterError(f"line {node.lineno} of the parameters cell is not `name = literal`")
        try:
            default = ast.literal_eval(value)
        except ValueError as e:
            raise ParameterError(f"parameter {name!r}: its default must be a literal") from e
        type_text = annotation or _infer_type(default)
        if not check_type(default, type_text):
            raise ParameterError(f"parameter {name!r}: default {default!r} is not a {type_text}")
        params[name] = Param(name, type_text, default, comments.get(node.lineno, ""))
    return params


def _line_comments(source: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _infer_type(value) -> str:
    if value is None:
        return "any"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", tuple: "list"}.get(
        type(value), "any"
    )


_SIMPLE = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, (list, tuple)),
    "tuple": lambda v: isinstance(v, (list, tuple)),
    "dict": lambda v: isinstance(v, dict),
    "None": lambda v: v is None,
    "any": lambda v: True,
    "Any": lambda v: True,
    "object": lambda v: True,
}


def check_type(value, type_text: str) -> bool:
    """Does `value` (as parsed from YAML or a literal) fit the annotation `type_text`?"""
    try:
        node = ast.parse(type_text, mode="eval").body
    except SyntaxError:
        return True  # an annotation we cannot read is not the user's error
    return _check(value, node)


def _check(value, node) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return value is None
    if isinstance(node, ast.Name):
        return _SIMPLE.get(node.id, _SIMPLE["any"])(value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _check(value, node.left) or _check(value, node.right)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        outer = node.value.id
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            return value is None or _check(value, args[0])
        if outer == "Union":
            return any(_check(value, a) for a in args)
        if outer == "Literal":
            return any(value == ast.literal_eval(a) and type(value) is type(ast.literal_eval(a)) for a in args)
        if outer in ("list", "List", "Sequence", "tuple", "Tuple"):
            if not isinstance(value, (list, tuple)):
                return False
            if (
                outer in ("tuple", "Tuple")
                and len(args) > 1
                and not any(isinstance(a, ast.Constant) and a.value is Ellipsis for a in args)
            ):
                return len(value) == len(args) and all(_check(v, a) for v, a in zip(value, args))
            return all(_check(v, args[0]) for v in value)
        if outer in ("dict", "Dict", "Mapping"):
            if not isinstance(value, dict):
                return False
            if len(args) == 2:
                return all(_check(k, args[0]) and _check(v, args[1]) for k, v in value.items())
            return True
    return True


def read_notebook(path: str | Path) -> NotebookSpec:
    """Read a notebook's parameters and its profiles file, refusing malformed profiles loudly."""
    path = Path(path)
    if path.suffix == ".py" and path.with_suffix(".ipynb").is_file():
        path = path.with_suffix(".ipynb")  # NAME.py names its paired notebook
    if path.is_dir():
        raise ParameterError(f"{path}: is a folder; expected a notebook, e.g. notebooks/quickstart.ipynb")
    if path.suffix != ".ipynb":
        raise ParameterError(f"{path}: expected a .ipynb notebook (or its paired .py)")
    if not path.is_file():
        raise ParameterError(f"{path}: no such notebook (notebooks: {', '.join(n.stem for n in list_notebooks())})")
    import nbformat  # imported here: it costs seconds, and most `studio` commands never need it

    nb = nbformat.read(path, as_version=4)
    params = parse_parameters(parameters_cell(nb))
    name = path.stem
    spec = NotebookSpec(name=name, path=path.resolve(), params=params, profiles={})
    profile_file = paths.EXPERIMENTS / f"{name}.yaml"
    if profile_file.exists():
        data = read_yaml(profile_file, paths.relative(profile_file)) or {}
        if not isinstance(data, dict):
            raise ParameterError(f"{paths.relative(profile_file)}: expected a mapping at the top level")
        unknown = set(data) - PROFILE_KEYS
        if unknown:
            raise ParameterError(
                f"{paths.relative(profile_file)}: unknown keys {sorted(unknown)}; valid: {sorted(PROFILE_KEYS)}"
            )
        profiles = data.get("profiles") or {}
        for pname, values in profiles.items():
            values = values or {}
            if not isinstance(values, dict):
                raise ParameterError(f"{paths.relative(profile_file)}: profile {pname!r} must be a mapping")
            _validate(spec, values, source=f"profile {pname!r} in {paths.relative(profile_file)}")
            profiles[pname] = values
        spec.profiles = profiles
        spec.figures = bool(data.get("figures", False))
        spec.after = list(data.get("after") or [])
    return spec


def list_notebooks() -> list[Path]:
    return sorted(paths.NOTEBOOKS.glob("*.ipynb"))


def _validate(spec: NotebookSpec, values: dict, source: str) -> None:
    valid = ", ".join(spec.params)
    for key, value in values.items():
        if key not in spec.params:
            raise ParameterError(
                f"unknown parameter {key!r} ({source}) for notebook {spec.name}; valid parameters: {valid}"
            )
        p = spec.params[key]
        check_plain(value, f"parameter {key!r} ({source})")
        if not check_type(value, p.type):
            raise ParameterError(f"parameter {key!r} ({source}) must be {p.type}, got {type(value).__name__} {value!r}")
        check_seeds(key, value, source)


def check_seeds(key: str, value, source: str) -> None:
    """`seed` is one int in SEED_RANGE; `seeds` a non-empty list of distinct ones (a repeated seed would
    shrink the seed spread to nothing and pass for agreement between seeds)."""
    lo, hi = SEED_RANGE
    if key == "seed" and isinstance(value, int) and not lo <= value <= hi:
        raise ParameterError(f"parameter 'seed' ({source}) must be in {lo}..{hi}, got {value}")
    if key != "seeds" or not isinstance(value, (list, tuple)):
        return
    if not value:
        raise ParameterError(f"parameter 'seeds' ({source}) is empty; give at least one seed, e.g. [0, 1, 2]")
    bad = [s for s in value if not (isinstance(s, int) and not isinstance(s, bool) and lo <= s <= hi)]
    if bad:
        raise ParameterError(f"parameter 'seeds' ({source}): every seed must be an int in {lo}..{hi}, got {bad[0]!r}")
    repeated = sorted({s for s in value if list(value).count(s) > 1})
    if repeated:
        raise ParameterError(f"parameter 'seeds' ({source}) repeats {repeated}; each seed must be distinct")


def parse_cli_value(text: str, key: str | None = None):
    """`-p KEY VALUE`: VALUE is YAML, so `8`, `0.5`, `[1, 2, 4]`, `true` and `null` arrive typed."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    name = f"parameter {key!r} (-p): " if key else ""
    return load_yaml_text(text, f"{name}cannot parse {shown!r} as a YAML value")


def load_param_file(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        raise ParameterError(f"parameter file {path} is a folder; give a YAML file of parameter values (-f FILE)")
    if not p.is_file():
        raise ParameterError(f"parameter file {path} does not exist")
    data = read_yaml(p, f"parameter file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"parameter file {path} must hold a mapping of parameter names to values")
    return data


def resolve(spec: NotebookSpec, profile: str | None = None, files=(), overrides: dict | None = None) -> dict:
    """Defaults <- profile <- each -f file <- -p overrides; every layer is checked before merging."""
    merged = dict(spec.defaults)
    if profile is not None:
        if profile not in spec.profiles:
            raise ParameterError(
                f"notebook {spec.name} has no profile {profile!r}; profiles: {', '.join(spec.profiles) or 'none'}"
            )
        merged.update(spec.profiles[profile])
    for f in files:
        values = load_param_file(f)
        _validate(spec, values, source=f"file {f}")
        merged.update(values)
    if overrides:
        _validate(spec, overrides, source="-p")
        merged.update(overrides)
    return merged
