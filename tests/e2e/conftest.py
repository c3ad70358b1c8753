"""A real ``steerlab serve`` process on the default model, started once for the e2e tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

STEERLAB = str(Path(sys.executable).parent / "steerlab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, url: str, server_db: Path, key: str, key_id: str, process: subprocess.Popen):
        self.url, self.server_db, self.key, self.key_id, self.process = url, server_db, key, key_id, process

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([STEERLAB, *args, "--server-db", str(self.server_db)], capture_output=True, text=True,
                              timeout=60)

    def new_key(self, name: str) -> tuple[str, str]:
        made = json.loads(self.cli("keys", "create", name).stdout)
        return made["api_key"], made["key_id"]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> LiveServer:
    root = tmp_path_factory.mktemp("server")
    server_db = root / "server.db"
    port = _free_port()
    env = {**os.environ, "STEERLAB_MAX_COMPLETION_TOKENS": "256"}
    made = json.loads(subprocess.run([STEERLAB, "keys", "create", "e2e", "--server-db", str(server_db)],
                                     capture_output=True, text=True, check=True, env=env).stdout)
    log = (root / "server.log").open("w")
    process = subprocess.Popen([STEERLAB, "serve", "--port", str(port), "--server-db", str(server_db)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
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
    yield LiveServer(url, server_db, made["api_key"], made["key_id"], process)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
