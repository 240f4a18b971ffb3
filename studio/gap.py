"""`studio.gap`: the public name of the representation-gap metrics (studio.analysis.gap).

Kept because users and earlier issues call `studio.gap.modality_gap`, `linear_cka`, ....
The module object is the implementation package itself (its names are the ones it re-exports); to
monkeypatch a function for calls made inside the package, patch the module that defines it.
"""
import sys

from studio.analysis import gap as _implementation

sys.modules[__name__] = _implementation
