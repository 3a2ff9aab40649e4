"""Which function runs each job kind.

Runners are registered by their owner with :func:`register_runner` (``core.jobs.runners``
registers the lab's kinds when imported: whoever builds a manager for real work imports it
first) and looked up when the job starts. Entries in ``RUNNERS`` override them, so tests can
inject an instant fake; a kind with no runner fails with a message naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.jobs.job import JobContext

Runner = Callable[["JobContext"], Any]  # runner(ctx) -> optional result dict

# kind -> runner, as registered by the module that owns the kind (register_runner)
_REGISTERED: dict[str, Runner] = {}
# kind -> runner overriding the registered one; tests put instant fakes here.
RUNNERS: dict[str, Runner] = {}


def register_runner(kind: str, fn: Runner) -> Runner:
    """Make ``fn`` the runner of job kind ``kind`` for every manager built without ``runners=``.

    The owner of a kind calls this at import (the manager imports no runner module itself,
    so the dependency points from the runners down to the manager). Returns ``fn``.
    """
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"Job kind {kind!r} must be a non-empty string.", "Register the runner under its run kind, e.g. 'classifier'.")
    if not callable(fn):
        raise ConfigError(f"The runner for job kind '{kind}' is not callable ({type(fn).__name__}).", "Pass a function runner(ctx).")
    _REGISTERED[kind] = fn
    return fn


class RunnerTable:
    """The runners one manager uses: its own ``runners`` dict, else the module registry.

    Both are read at each lookup, so a runner registered (or a test's fake put in ``RUNNERS``,
    or an entry deleted from ``runners``) after the manager was built counts.
    """

    def __init__(self, runners: dict[str, Runner] | None = None):
        self._runners = runners  # None: the module registry (registered runners + RUNNERS overrides)

    def _all(self) -> dict[str, Runner]:
        if self._runners is not None:
            return dict(self._runners)
        return {**_REGISTERED, **RUNNERS}

    def runner_for(self, kind: str) -> Runner | None:
        return self._all().get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._all())

    def require(self, kind: str) -> Runner:
        """The runner of ``kind``, or a ConfigError naming the kind and the known ones."""
        runner = self.runner_for(kind)
        if runner is None:
            raise ConfigError(
                f"No runner is registered for job kind '{kind}'.",
                f"Import the module that registers it (the app and the CLI import core.jobs.runners) or use one of: {', '.join(self.kinds()) or 'none registered'}.",
            )
        return runner
