"""User-facing errors. Every message names the problem *and* the fix."""


class LabError(Exception):
    """An error caused by the user's input or environment, with a fix in the message.

    The CLI prints these without a traceback and exits with status 2; the app shows
    them with ``st.error``. Anything else is a bug and keeps its traceback.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem} Fix: {fix}")


class DataError(LabError):
    """Bad or missing dataset input (folders, files, zips, counts)."""


class ConfigError(LabError):
    """A bad option value (unknown name, ratio below 1, n <= 0, ...)."""


class WeightsMissingError(LabError):
    """Pretrained weights that cannot be found offline."""


class TrainingError(LabError):
    """Training stopped for a reason the user must act on (NaN loss, out of memory)."""


class Unavailable(LabError):
    """Work that cannot run on this machine (e.g. Stable Diffusion without its weights, a
    GPU-only setting on a CPU). A study reports it as ``unavailable`` with this reason;
    it is never a failure and never a silent skip."""


class Cancelled(Exception):
    """Raised when ``should_stop()`` turned true; the caller keeps what it saved before."""


class DiskFullError(LabError):
    """A write failed because its disk (or quota) is full; the file it replaced is left as it was."""
