"""`studio.gap`: the public name of the representation-gap metrics (studio.analysis.gap).

Kept because users and earlier issues call `studio.gap.modality_gap`, `linear_cka`, ....
The module object is the implementation itself, so private names and monkeypatching behave as before.
"""
import sys

from studio.analysis import gap as _implementation

sys.modules[__name__] = _implementation
