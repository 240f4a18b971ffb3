"""studio: a research workbench for how multimodal LLMs use visual context."""

__version__ = "0.1.0"

# First, before numpy or torch load: the numerical path of this process and of every child it starts
# (portable unless STUDIO_NUMERICS=fast; see studio.numerics).
from studio import numerics as _numerics  # noqa: E402

_numerics.apply()

from studio.repro import current_seed, seed_everything  # noqa: E402,F401
