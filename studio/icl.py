"""`studio.icl`: the public name of the ICL episodes and probes (studio.data.episodes, studio.analysis.icl_probe).

Kept because users and earlier issues call `studio.icl.digit_episodes`, `probe`, `visual_reliance`.
The module object is the implementation itself, so private names and monkeypatching behave as before.
"""
import sys

from studio.analysis import icl_probe as _implementation

sys.modules[__name__] = _implementation
