"""studio: a research workbench for how multimodal LLMs use visual context."""
__version__ = "0.1.0"

from studio.repro import current_seed, seed_everything  # noqa: E402,F401
