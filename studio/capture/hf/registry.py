"""The registry of VLM families: every `Family` subclass in `studio/capture/hf/vlms/`, by name.

    families()                 # ("gemma3", "idefics3", ..., "smolvlm"): the supported families
    family_class("qwen2_vl")   # its Family subclass
    family_of(model_or_config) # the family name of a loaded model, from config.model_type
    model_class("llava")       # transformers.LlavaForConditionalGeneration

A family is registered by decorating its class with `@register` in one module of the `vlms`
package; every module there is imported when the registry is first read.
"""

from __future__ import annotations

import importlib
import pkgutil

from studio.capture.hf.family import Family
from studio.errors import ParameterError

NEW_FAMILY_FILE = "studio/capture/hf/vlms/<family>.py"
_REGISTRY: dict[str, type[Family]] = {}
_loaded = False


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: add a Family subclass under its `name` (one name, one class)."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two VLM families named {cls.name!r}: {_REGISTRY[cls.name]} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> dict[str, type[Family]]:
    global _loaded
    if not _loaded:
        package = importlib.import_module("studio.capture.hf.vlms")
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
        _loaded = True
    return _REGISTRY


def families() -> tuple[str, ...]:
    """Names of the supported VLM families, sorted."""
    return tuple(sorted(_load()))


def video_families() -> tuple[str, ...]:
    """The families that take videos as well as images (`Family.video`)."""
    return tuple(n for n in families() if _load()[n].video)


def _unsupported(what: str) -> ParameterError:
    return ParameterError(
        f"{what}; supported VLM families: {', '.join(families())}. "
        f"A new family is one Family subclass in {NEW_FAMILY_FILE} (and one test in tests/test_hf_families.py)."
    )


def family_class(name: str) -> type[Family]:
    """The Family subclass registered as `name`; an unknown name raises ParameterError listing them."""
    registry = _load()
    if name not in registry:
        raise _unsupported(f"unknown VLM family {name!r}")
    return registry[name]


def check_family(name: str) -> str:
    return family_class(name).name


def family_of(model_or_config) -> str:
    """The family of a model or config, from its model_type."""
    cfg = getattr(model_or_config, "config", model_or_config)
    mt = getattr(cfg, "model_type", None)
    for cls in _load().values():
        if mt in cls.model_types:
            return cls.name
    raise _unsupported(f"no VLM family for model_type {mt!r}")


def family_for(model_or_config, name: str | None = None) -> Family:
    """The Family instance bound to a model's config: `name` checked against its model_type when given."""
    cfg = getattr(model_or_config, "config", model_or_config)
    found = family_of(cfg)
    if name is not None and check_family(name) != found:
        raise _unsupported(
            f"this checkpoint is a {found!r} model (model_type {getattr(cfg, 'model_type', None)!r}), not {name!r}"
        )
    return _load()[found](cfg)


def model_class(name: str):
    """The transformers `...ForConditionalGeneration` class of a family."""
    import transformers

    return getattr(transformers, family_class(name).model_class)
