"""`studio.scaling`: the public name of the scaling-law analysis (studio.analysis.scaling).

Kept because users and earlier issues call `studio.scaling.fit`, `optimal_allocation`, `register_law`.
The module object is the implementation itself, so private names and monkeypatching behave as before.
"""
import sys

from studio.analysis import scaling as _implementation

sys.modules[__name__] = _implementation
