"""`make lab`: JupyterLab on the loopback interface, behind a token, with the studio kernel by default."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from studio import paths
from studio.workbench.lab import HOST, api, free_port, lab_command, lab_env, start_lab, stop_lab, write_settings


def test_command_is_loopback_only_with_token_and_project_kernel(tmp_path):
    cmd = lab_command(12345, "t" * 48, tmp_path)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=12345" in cmd
    assert "--ServerApp.port_retries=0" in cmd
    assert not any("t" * 48 in c for c in cmd)  # the token is never on the command line (/proc/PID/cmdline)
    config = tmp_path / "jupyter_server_config.json"
    assert f"--config={config}" in cmd and json.loads(config.read_text()) == {"IdentityProvider": {"token": "t" * 48}}
    assert config.stat().st_mode & 0o777 == 0o600 and tmp_path.stat().st_mode & 0o777 == 0o700
    assert f"--MultiKernelManager.default_kernel_name={paths.KERNEL_NAME}" in cmd
    assert f"--ServerApp.root_dir={paths.ROOT}" in cmd
    assert f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert not any("user_settings_dir" in c for c in cmd)  # the user's own settings unless asked
    assert any("user_settings_dir" in c for c in lab_command(1, "x", tmp_path, private_settings=True))


def test_kernels_do_not_inherit_test_or_run_settings(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # would hide inline figures
    monkeypatch.setenv(paths.RUN_DIR_ENV, "/somewhere")
    env = lab_env({"EXTRA": "1"})
    assert "MPLBACKEND" not in env and paths.RUN_DIR_ENV not in env and env["EXTRA"] == "1"


def test_free_port_prefers_the_asked_one_unless_taken():
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen()
        taken = s.getsockname()[1]
        assert free_port(taken) != taken
    port = free_port()
    assert free_port(port) == port


def test_settings_files(tmp_path):
    write_settings(tmp_path, {"@jupyterlab/docmanager-extension/plugin": {"autosave": False}})
    f = tmp_path / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    assert json.loads(f.read_text()) == {"autosave": False}


@pytest.mark.slow
def test_server_answers_only_with_its_token_and_stops(tmp_path):
    server = start_lab(state_dir=tmp_path, log=tmp_path / "lab.log")
    try:
        assert server.url.startswith("http://127.0.0.1:") and len(server.token) >= 32
        assert api(server, "/api/kernelspecs")["default"] == paths.KERNEL_NAME
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + "/api/sessions", timeout=5)
        assert e.value.code == 403
        # No local user reads the token from the process list: not in the server's command line.
        cmdline = Path(f"/proc/{server.process.pid}/cmdline")
        if cmdline.exists():
            assert server.token.encode() not in cmdline.read_bytes()
        extensions = (tmp_path / "lab.log").read_text()
        assert "jupyterlab_jupytext | extension was successfully loaded" in extensions
    finally:
        code = stop_lab(server.process)
    assert code is not None and server.process.poll() is not None
