"""Plain values: what a parameter, a profile or a sweep config may hold, and reading YAML into them.

    data = read_yaml("experiments/sweeps/visual_context.yaml")   # one ParameterError naming the file
    check_plain(value, "parameter 'where' (-p)")                  # all the way down, or ParameterError

A plain value is None, bool, int, float (finite), str (valid Unicode), or a list or dict of plain
values, with no cycles. Nothing else reaches papermill or a sweep target. Why so strict: papermill
writes a value it does not know (bytes from YAML's standard `!!binary` tag, a `!!timestamp`, a
`!!set`) as `"` + str(value) + `"` without escaping, so bytes whose text closes the quote run as
code in the kernel; a parameters file or profile shared by a colleague must never do that. NaN and
infinities are refused too: no parameter means "not a number", and a NaN threshold compares false
with everything (a filter that silently keeps all).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import yaml

from studio.errors import ParameterError

SCALARS = (type(None), bool, int, float, str)


def check_plain(value, where: str) -> None:
    """Raise ParameterError, naming `where` and the place inside the value, unless `value` is plain."""
    _walk(value, where, "", ())


def _walk(value, where: str, at: str, path: tuple[int, ...]) -> None:
    place = f"{where}{' at ' + at if at else ''}"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(f"{place}: {value!r} is not a finite number")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ParameterError(
                f"{place}: the string holds {value[e.start]!r} at character {e.start}, which is not valid "
                "Unicode (a lone surrogate); write the character itself"
            ) from None
        return
    if isinstance(value, SCALARS):
        return
    if isinstance(value, (list, tuple, dict)):
        if id(value) in path:
            raise ParameterError(f"{place}: the value contains itself (a YAML anchor cycle such as '&a [1, *a]')")
        inner = path + (id(value),)
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, SCALARS) or isinstance(k, float) and not math.isfinite(k):
                    raise ParameterError(f"{place}: key {k!r} is a {type(k).__name__}; keys must be plain scalars")
                _walk(v, where, f"{at}[{k!r}]", inner)
        else:
            for i, v in enumerate(value):
                _walk(v, where, f"{at}[{i}]", inner)
        return
    raise ParameterError(
        f"{place}: a value of type {type(value).__name__} is not allowed (only null, booleans, numbers, "
        "strings, and lists and mappings of them; YAML tags such as !!binary, !!timestamp or !!set are refused)"
    )


def load_yaml_text(text: str, what: str):
    """`yaml.safe_load(text)` with every failure as one ParameterError naming `what`."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ParameterError(f"{what}: not valid YAML: {e}") from None
    except ValueError as e:  # Python's limit on the digits of an int (e.g. 5,000 digits), raised by PyYAML
        if "digits" in str(e):
            e = f"it holds an integer of more than {sys.get_int_max_str_digits()} digits, which no value needs"
        raise ParameterError(f"{what}: {e}") from None
    except RecursionError:
        raise ParameterError(f"{what}: nested too deeply to read") from None


def read_yaml(path: str | Path, what: str | None = None):
    """Read a YAML file as UTF-8 text; bad bytes, bad YAML and huge integers are one ParameterError."""
    path = Path(path)
    what = what or str(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ParameterError(
            f"{what}: byte {data[e.start : e.start + 1]!r} at line {line} (offset {e.start}) is not UTF-8; "
            "save the file as UTF-8 text"
        ) from None
    return load_yaml_text(text, what)


def check_probability(name: str, value, *, below_one: bool = False) -> float:
    """`value` as a float in [0, 1] (or [0, 1) with `below_one`), else a ParameterError naming `name`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    hi = "1)" if below_one else "1]"
    if not ok or not 0 <= value <= 1 or (below_one and value == 1):
        raise ParameterError(f"{name} must be a probability in [0, {hi}, got {value!r}")
    return float(value)
