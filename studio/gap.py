"""`studio.gap`: the public name of the representation-gap metrics.

Kept because users and earlier issues call `studio.gap.modality_gap`, `linear_cka`, `bootstrap`, ...
The metrics live in studio.analysis.gap, their intervals and layer profiles in
studio.analysis.gap_bootstrap; this module offers the public names of both.
"""

from studio.analysis.gap import *  # noqa: F403
from studio.analysis.gap import __all__ as _metrics
from studio.analysis.gap_bootstrap import *  # noqa: F403
from studio.analysis.gap_bootstrap import __all__ as _intervals

__all__ = [*_metrics, *_intervals]
