"""The job manager: runs the lab's long work in background threads, one queue per device.

Every job is a run folder (``core.store.runs.Run``): the manager creates it ``queued``, a
worker thread picks it up, calls the job kind's *runner* with a :class:`JobContext`
(config, run folder, callbacks, resume flag, device) and records the outcome in
``status.json``. Pages only read jobs and runs; nothing here imports Streamlit.

One concern a module:

* ``job``: the :class:`Job` record (state, progress, ETA) and the :class:`JobContext` a runner gets.
* ``registry``: which runner serves each kind (:func:`register_runner`, ``RUNNERS`` overrides).
* ``queues``: two lanes per device, a queue and a worker thread each. The training lane runs
  one job at a time; a second waits in its queue.
* ``interactive``: the interactive lane takes short work (previews, small guidance sweeps:
  see ``INTERACTIVE``) so it never waits behind a training: while an interactive job runs, a
  training on the same device pauses between two steps (its ``should_stop`` callback blocks)
  and continues afterwards. Jobs never compute at the same time on one device, and only the
  training lane creates an Accelerator (its state is process-wide).
* ``records``: the jobs in memory and their ``status.json``. Restart: runs found
  ``queued``/``running`` whose owner process is gone are marked ``interrupted`` when a manager
  is built; ``resume()`` queues them again with ``resume=True``.
* ``cancel``: cancel is cooperative: ``cancel()`` sets a flag the runner polls via
  ``should_stop``; the training loops save a checkpoint before they return.
* ``execute``: one job on a worker. Failures are captured: a ``LabError`` keeps its message,
  out-of-memory becomes a clear message with the fix, anything else keeps its traceback. The
  server keeps serving.
* ``manager``: :class:`JobManager`, which admits jobs and holds the rest. Sessions apart (a
  server shared by a class): a job records its ``owner`` (the browser session that started
  it); ``cancel(run_id, owner=...)`` refuses another owner's job, and ``limits``
  (core.serving.server.JobLimits) caps queued-or-running jobs per owner and per server before
  anything is created. ``admit`` lets the app refuse a config (data outside its roots) first.
  The CLI and tests build managers without either: unlimited.
* ``runners``: the runner of each job kind the app launches (cfg, classifier, fill, sweep, study, …),
  a thin adapter from a run folder to a core function. It sits a floor above the rest of this
  package (it imports the study, training and generators); nothing else here imports it.

Runners are registered by their owner (``core.jobs.runners`` registers the lab's kinds when
imported: whoever builds a manager for real work imports it first) and looked up when the
job starts; a kind with no runner fails with a message naming it.
"""

from core.jobs.execute import is_oom
from core.jobs.interactive import INTERACTIVE, lane_for, register_interactive
from core.jobs.job import ETA_WINDOW, FINAL, INTERACTIVE_LANE, RESUMABLE, TRAIN_LANE, Job, JobContext, format_eta
from core.jobs.manager import JobManager
from core.jobs.queues import default_devices
from core.jobs.kinds import RUNNERS, Runner, register_runner

__all__ = [
    "ETA_WINDOW", "FINAL", "INTERACTIVE", "INTERACTIVE_LANE", "RESUMABLE", "RUNNERS", "TRAIN_LANE",
    "Job", "JobContext", "JobManager", "Runner",
    "default_devices", "format_eta", "is_oom", "lane_for", "register_interactive", "register_runner",
]
