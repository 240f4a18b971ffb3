"""`studio.scaling`: the public name of the scaling-law analysis (studio.analysis.scaling).

Kept because users and earlier issues call `studio.scaling.fit`, `optimal_allocation`, `register_law`.
The module object is the implementation package itself (its names are the ones it re-exports); to
monkeypatch a function for calls made inside the package, patch the module that defines it.
"""

import sys

from studio.analysis import scaling as _implementation

sys.modules[__name__] = _implementation
