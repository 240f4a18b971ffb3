"""`make lab`: JupyterLab from the project's environment, on 127.0.0.1, with the `studio` kernel.

    .venv/bin/python -m studio.workbench.lab [--port 8888] [--token-file FILE]

The server listens on the loopback interface only, asks for a token (a fresh random one unless
given by $STUDIO_LAB_TOKEN or a file), opens every notebook with the project kernel (the .ipynb files name kernelspec "studio", and
it is also the server's default kernel), serves the repository root, and starts from a fresh
workspace, so that yesterday's open tabs do not start extra kernels. Notebooks are paired with their
py:percent text through jupytext's contents manager (installed with the jupytext package): saving a
notebook from Lab rewrites both notebooks/NAME.ipynb and notebooks/NAME.py.

The token never appears on a command line, where any local user reads it from /proc/PID/cmdline:
the server gets it from a mode-0600 config file in its private (0700) state folder, named by
`--config` (see `write_token_config`).

`start_lab(port, state_dir)` starts the same server as a subprocess and returns (process, url,
token); `stop_lab(process)` stops it by its own PID. tests/test_browser.py drives it in Chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from studio import paths

HOST = "127.0.0.1"
DEFAULT_PORT = 8888
READY_TIMEOUT_S = 60.0
# The server's own environment must not leak into the kernels it starts: the test suite sets
# MPLBACKEND=Agg (which would hide inline figures) and `studio run` sets the run folder.
_DROPPED_ENV = ("MPLBACKEND", paths.RUN_DIR_ENV, "STUDIO_LAB_TOKEN")  # the token: kept out of kernels too
# Lab settings used when a caller asks for a private settings folder (the browser test): no news
# pop-up asking to phone home, no autosave that would write outputs into the committed notebook.
QUIET_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


class LabServer(NamedTuple):
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT (no trailing slash, no token)
    token: str

    @property
    def lab_url(self) -> str:
        """The address to open in a browser, token included."""
        return f"{self.url}/lab?token={self.token}"


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there on 127.0.0.1, else a free port chosen by the OS."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


TOKEN_CONFIG = "jupyter_server_config.json"  # in state_dir, mode 0600: holds the token


def write_token_config(state_dir: Path, token: str) -> Path:
    """The server's config file holding the token, readable by this user only (created 0600, never
    widened: os.open with O_EXCL refuses a file someone placed there first)."""
    path = Path(state_dir) / TOKEN_CONFIG
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"IdentityProvider": {"token": token}}, f)
    return path


def lab_command(
    port: int, token: str, state_dir: Path, *, root: Path = paths.ROOT, private_settings: bool = False
) -> list[str]:
    """The JupyterLab command line: loopback only, token (from a 0600 file), project kernel, fresh workspace."""
    state_dir = Path(state_dir)
    state_dir.chmod(0o700)  # the token file's folder: no other user lists or opens it
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the caller chose the port; never drift to another one
        f"--ServerApp.root_dir={root}",
        f"--config={write_token_config(state_dir, token)}",
        f"--MultiKernelManager.default_kernel_name={paths.KERNEL_NAME}",
        f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
    ]
    if private_settings:
        cmd.append(f"--LabApp.user_settings_dir={state_dir / 'user-settings'}")
    import zmq

    if zmq.has("curve"):  # the kernels' loopback ports encrypted, as in headless runs (runner.kernel_manager_class)
        cmd.append("--KernelManager.transport_encryption=auto")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def lab_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    # Kernels are started with the venv's interpreter; its scripts come first on PATH.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def write_settings(settings_dir: Path, settings: dict) -> None:
    """Write Lab user settings: {"@scope/pkg/plugin": {...}} -> @scope/pkg/plugin.jupyterlab-settings."""
    for plugin, values in settings.items():
        f = settings_dir / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values, indent=2) + "\n")


def wait_ready(server: LabServer, timeout: float = READY_TIMEOUT_S, log: Path | None = None) -> float:
    """Poll /api/status until the server answers; return the seconds it took."""
    t0 = time.perf_counter()
    while True:
        code = server.process.poll()
        if code is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"JupyterLab exited with code {code} before it was ready\n{tail}")
        try:
            api(server, "/api/status", timeout=2)
            return time.perf_counter() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"JupyterLab did not answer on {server.url} within {timeout:.0f} s")
        time.sleep(0.25)


def api(server: LabServer, path: str, timeout: float = 5):
    """GET a Jupyter Server REST endpoint with the token; returns the decoded JSON."""
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


def start_lab(
    port: int | None = None,
    token: str | None = None,
    *,
    state_dir: str | os.PathLike,
    settings: dict | None = None,
    env: dict | None = None,
    log: str | os.PathLike | None = None,
    root: Path = paths.ROOT,
    wait: bool = True,
) -> LabServer:
    """Start JupyterLab as a subprocess (its own session) and wait until it answers.

    state_dir: a folder for this server's workspace (and settings when `settings` is given); the
    caller owns it. settings: Lab user settings to use instead of the user's own (see QUIET_SETTINGS).
    env: extra environment for the server and its kernels. log: a file for the server's output
    (default: inherit the terminal). Returns (process, url, token).
    """
    from studio.workbench.runner import ensure_kernel

    ensure_kernel()  # the `studio` kernelspec points at this interpreter
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        write_settings(state_dir / "user-settings", settings)
    port = port or free_port()
    token = token or secrets.token_hex(24)
    cmd = lab_command(port, token, state_dir, root=root, private_settings=settings is not None)
    out = open(log, "ab") if log is not None else None
    try:
        # A session of its own: Ctrl-C in the terminal reaches only us, and we stop it by its PID.
        process = subprocess.Popen(
            cmd,
            cwd=root,
            env=lab_env(env),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out is not None:
            out.close()
    server = LabServer(process, f"http://{HOST}:{port}", token)
    if wait:
        try:
            wait_ready(server, log=Path(log) if log is not None else None)
        except BaseException:
            stop_lab(process)
            raise
    return server


def stop_lab(process: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """Stop the server we started, by its PID: SIGTERM (it shuts its kernels down), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.workbench.lab", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=None, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}, or a free one if taken)"
    )
    parser.add_argument(
        "--token-file",
        default=None,
        help="a file holding the access token (default: $STUDIO_LAB_TOKEN, else a random one); "
        "never on the command line, where other local users can read it",
    )
    args = parser.parse_args(argv)
    token = os.environ.get("STUDIO_LAB_TOKEN")
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            parser.error(f"--token-file {args.token_file}: cannot read it ({e})")
    if token is not None and len(token) < 16:
        parser.error("the token (--token-file or $STUDIO_LAB_TOKEN): use at least 16 characters")
    port = args.port or free_port(DEFAULT_PORT)
    # The server runs in its own session; a `kill` or a closed terminal must stop it too, not orphan it.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="studio-lab-"))
    try:
        server = start_lab(port, token, state_dir=state_dir)
        print(
            f"\nJupyterLab (kernel '{paths.KERNEL_NAME}', root {paths.ROOT}) is ready:\n\n"
            f"    {server.lab_url}\n\nCtrl-C stops it.",
            flush=True,
        )
        try:
            return server.process.wait()  # the server stopped by itself (e.g. File > Shut Down)
        except KeyboardInterrupt:
            print("\nstopping JupyterLab ...", flush=True)
            stop_lab(server.process)
            return 0
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
