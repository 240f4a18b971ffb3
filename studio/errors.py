"""The errors a user can act on. Each message names the thing to fix; the CLI prints it on one line.

They live on the floor so that every layer (sweeps, the workbench, studies) raises the same classes
and the CLI can tell a user's mistake (one line, exit 2) from a bug (a traceback).
"""

from __future__ import annotations


class StudioError(Exception):
    """Base of every error the `studio` command reports as one line instead of a traceback."""


class ParameterError(StudioError, ValueError):
    """A parameter, profile or config value that is refused; the message names it and the valid ones."""


class CacheError(StudioError):
    """A cached artefact that cannot be used (corrupt, unreadable); the message names its folder."""


class PathError(StudioError, ValueError):
    """A path given by a user that the workbench refuses (outside the project, missing, a folder, ...)."""
