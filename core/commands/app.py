"""``python -m core app``: start the Streamlit app (``make run`` calls this).

On a loopback address it just starts. On any other address (``--host 0.0.0.0``), or with
``--shared`` (a loopback address behind a reverse proxy that serves a class), every machine
that reaches the port can use the lab, so it first prints what it exposes
(core.serving.server.exposure_summary) and refuses to start unless ``IMBALANCE_LAB_DATA_ROOTS``
names the folders the server may read.
"""

from __future__ import annotations

import os
import sys

from core.serving import server as serving
from core.commands.config_file import add_config_argument
from core.errors import ConfigError
from core.paths import app_dir, runs_dir

HELP = "Start the lab's app (Streamlit) on --host:--port; a non-loopback host needs IMBALANCE_LAB_DATA_ROOTS."


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but 127.0.0.1/localhost/::1 serves other machines")
    p.add_argument("--port", type=int, default=8501, help="port to listen on")
    p.add_argument("--shared", action="store_true",
                   help="serve a class through a reverse proxy on this machine: a loopback host, but treated as exposed "
                        "(explicit data roots required, one workspace per browser session)")
    p.add_argument("--check", action="store_true", help="print what would be exposed and check the settings, then exit without starting")
    add_config_argument(p)


def config_flags(folder) -> list[str]:
    """The app's .streamlit/config.toml as command-line flags (``--server.maxUploadSize 1024`` ...).

    Streamlit reads config.toml only from the working folder or ~/.streamlit; a regular install
    runs from the user's folder (where runs/ goes), so the settings travel as flags instead."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = folder / ".streamlit" / "config.toml"
    if not path.is_file():
        return []
    flags = []
    for section, values in tomllib.loads(path.read_text()).items():
        for key, value in values.items():
            if f"{section}.{key}" in ("server.address", "server.port"):
                continue  # the launcher's own --host/--port
            flags += [f"--{section}.{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def streamlit_command(host: str, port: int) -> list[str]:
    folder = app_dir()
    return [sys.executable, "-m", "streamlit", "run", str(folder / "app.py"), *config_flags(folder),
            "--server.address", host, "--server.port", str(port)]


def exposed(host: str, shared: bool = False) -> bool:
    return shared or not serving.is_loopback(host)


def prepare(host: str, port: int, env: dict | None = None, shared: bool = False) -> list[str]:
    """Check the settings for serving on host:port (ConfigError if they do not allow it), print
    what an exposed server (non-loopback, or ``shared``) exposes, and return the command that starts it."""
    env = os.environ if env is None else env
    if not 0 < port < 65536:
        raise ConfigError(f"Port {port} is not a TCP port.", "Pass --port between 1 and 65535, e.g. 8501.")
    serving.JobLimits.from_env(env)  # a malformed limit is reported now, not on the first page view
    if exposed(host, shared):
        if not serving.roots_explicit(env):
            raise ConfigError(
                f"Refusing to serve on {host}" + (" for a class (--shared)" if shared else "") + ": every machine that reaches it could read the data folders, and "
                f"{serving.ROOTS_VAR} is not set to say which ones.",
                f"Set {serving.ROOTS_VAR} to the folders the class may use (separated by '{os.pathsep}'), e.g. "
                f"`{serving.ROOTS_VAR}=../shared/data make run HOST={host}`; or serve on 127.0.0.1.")
        print(serving.exposure_summary(host, port, env), flush=True)
    return streamlit_command(host, port)


def where_words() -> str:
    """The folders the app will use: its files (and study files), and the runs folder."""
    folder = app_dir()
    studies = sorted(p.name for p in (folder / "studies").glob("*.toml"))
    return (f"app: {folder / 'app.py'}\n"
            f"study files ({len(studies)}) in {folder / 'studies'}: {', '.join(studies) or '(none)'}\n"
            f"runs folder: {runs_dir()}")


def run(args) -> int:
    cmd = prepare(args.host, args.port, shared=args.shared)
    print(where_words(), flush=True)
    if args.check:
        from core.serving.admission import summary

        print(summary())
        print("settings OK; would run: " + " ".join(cmd))
        return 0
    os.environ["IMBALANCE_LAB_RUNS"] = str(runs_dir())  # the server uses the folder just printed, whatever its working folder
    os.environ[serving.HOST_VAR] = args.host  # the app keeps per-session workspaces when this is not loopback
    if exposed(args.host, args.shared):
        os.environ[serving.SHARED_VAR] = "1"  # ... and when shared behind a proxy
    os.execv(sys.executable, cmd)  # the server replaces this process (Ctrl-C reaches Streamlit directly)
    return 0  # not reached
