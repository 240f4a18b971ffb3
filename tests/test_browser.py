"""JupyterLab as a person uses it: Debian's Chromium opens the quickstart and runs it from the Run menu.

Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) and the playwright Python
package; Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from pathlib import Path

import psutil  # an ipykernel dependency
import pytest

from studio import paths
from studio.workbench.lab import QUIET_SETTINGS, api, start_lab, stop_lab, wait_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]  # containers often give /dev/shm 64 MB; Lab's page needs more
NOTEBOOK = "notebooks/quickstart.ipynb"
FIGURE = "quickstart_pooling"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _children(pid: int) -> list[int]:
    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_one_idle_session(server, timeout: float = 40.0) -> dict:
    """Exactly one session, on the quickstart, with the studio kernel, idle (Lab's notes: a restored
    workspace can open a notebook twice and start two kernels, and then Run All misbehaves)."""
    t0, sessions = time.perf_counter(), []
    while time.perf_counter() - t0 < timeout:
        sessions = api(server, "/api/sessions")
        if len(sessions) == 1 and sessions[0]["kernel"]["execution_state"] == "idle":
            return sessions[0]
        time.sleep(0.25)
    raise AssertionError(f"expected exactly one idle kernel session within {timeout:.0f} s, got {sessions}")


def _check_jupytext_pairs_on_save(server, tmp_path):
    """Saving a notebook through this server (what Lab's Save does) also writes its py:percent twin."""
    import shutil
    import urllib.request

    # inside the project (Lab serves only that) and ignored by git; the tests send RUNS elsewhere
    folder = paths.SCRATCH / f"_lab_pairing_{tmp_path.name}"
    rel = paths.relative(folder)
    try:
        nb = json.loads((paths.ROOT / NOTEBOOK).read_text())
        for cell in nb["cells"]:  # Lab sends each source as one string, not the file's list of lines
            cell["source"] = "".join(cell["source"])
        body = json.dumps({"type": "notebook", "format": "json", "content": nb}).encode()
        folder.mkdir(parents=True)
        req = urllib.request.Request(
            f"{server.url}/api/contents/{rel}/paired.ipynb",
            data=body,
            method="PUT",
            headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).close()
        twin = folder / "paired.py"
        assert twin.exists(), "jupytext's contents manager is not active: saving wrote no .py"
        assert twin.read_text() == (paths.ROOT / NOTEBOOK).with_suffix(".py").read_text()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_quickstart_runs_in_jupyterlab(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium) "
            "to run the JupyterLab browser test"
        )
    from playwright import sync_api  # a test requirement (pyproject [test]); the browser itself may be missing

    committed = {p: _sha(paths.ROOT / p) for p in (NOTEBOOK, NOTEBOOK.replace(".ipynb", ".py"))}
    run_dir = tmp_path / "run"  # the kernel saves its figures here, not into experiments/scratch
    t = {"start": time.perf_counter()}
    server = start_lab(
        state_dir=tmp_path / "lab",
        settings=QUIET_SETTINGS,
        log=tmp_path / "lab.log",
        env={paths.RUN_DIR_ENV: str(run_dir)},
        wait=False,
    )
    kernels = []
    try:
        with sync_api.sync_playwright() as pw:
            # Chromium starts while the server does.
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
            t["browser"] = time.perf_counter()
            try:
                wait_ready(server, log=tmp_path / "lab.log")
                t["server"] = time.perf_counter()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(f"{server.url}/lab/tree/{NOTEBOOK}?token={server.token}")
                session = _wait_one_idle_session(server)
                t["kernel"] = time.perf_counter()
                assert session["path"] == NOTEBOOK
                assert session["kernel"]["name"] == paths.KERNEL_NAME
                kernels = _children(server.process.pid)
                assert kernels, "no kernel process under the server"
                panel = page.locator(".jp-NotebookPanel")
                panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
                assert "Python (studio)" in panel.locator(".jp-KernelName").inner_text()
                cells = panel.locator(".jp-Cell")
                n_code = panel.locator(".jp-CodeCell").count()
                assert n_code >= 2 and cells.count() > n_code

                t["ui"] = time.perf_counter()
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                # Done when every code cell shows a number in its prompt (not [*] or [ ]) and a figure is
                # shown, or as soon as a traceback appears (Run All stops there).
                page.wait_for_function(
                    """n => {
                        const nb = document.querySelector('.jp-NotebookPanel');
                        const outs = [...nb.querySelectorAll('.jp-OutputArea-output')];
                        if (outs.some(o => o.textContent.includes('Traceback (most recent call last)'))) return true;
                        const ran = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                            .filter(p => /\\[\\d+\\]/.test(p.textContent)).length;
                        return ran === n && nb.querySelector('.jp-OutputArea-output img') !== null;
                    }""",
                    arg=n_code,
                    timeout=60_000,
                )
                t["ran"] = time.perf_counter()
                prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")

                # textContent, not innerText: Lab may skip rendering cells scrolled out of view.
                texts = panel.locator(".jp-OutputArea-output").all_text_contents()
                errors = [x for x in texts if "Traceback" in x or re.search(r"^\w+(Error|Exception)\b", x, re.M)]
                assert not errors, "a cell shows an error:\n" + "\n---\n".join(errors)
                image = panel.locator(".jp-OutputArea-output img").first
                image.wait_for(state="visible", timeout=5_000)
                assert image.evaluate("img => img.naturalWidth") > 100  # a rendered figure, not a broken image
                image.scroll_into_view_if_needed()
                shot = tmp_path / "quickstart_in_jupyterlab.png"
                page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
                steps = list(t.items())
                print(
                    f"\nscreenshot: {shot}\n"
                    + ", ".join(f"{b[0]} {b[1] - a[1]:.1f} s" for a, b in zip(steps, steps[1:]))
                    + f"; {prompts.count()} code cells run"
                )
            except BaseException:
                with contextlib.suppress(Exception):  # what the page showed when it failed
                    browser.contexts[0].pages[0].screenshot(path=str(tmp_path / "failure.png"))
                print(f"\nJupyterLab log: {tmp_path / 'lab.log'}; screenshot: {tmp_path / 'failure.png'}")
                raise
            finally:
                browser.close()
        _check_jupytext_pairs_on_save(server, tmp_path)
    finally:
        code = stop_lab(server.process)
    assert code is not None, "the JupyterLab server did not stop"
    assert not [k for k in kernels if _alive(k)], "the kernel outlived the server"
    # The kernel got the server's environment (figures into run_dir) and nothing touched the repo.
    assert (run_dir / "figures" / f"{FIGURE}.png").exists()
    assert {p: _sha(paths.ROOT / p) for p in committed} == committed, "the committed notebook pair changed"
