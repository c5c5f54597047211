"""Errors a user can act on. Every message is one clear line; the CLI prints it without a traceback."""


class VideoPruneError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class PlanError(VideoPruneError, ValueError):
    """A plan names an unknown method, a bad parameter or an illegal stage order."""


class VideoError(VideoPruneError, ValueError):
    """A video cannot be read, is empty, or has an unusable size."""


class ModelLoadError(VideoPruneError, RuntimeError):
    """A model path, hub id or architecture cannot be loaded."""
