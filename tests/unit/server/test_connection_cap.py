"""The connection cap of a real ``steerlab serve`` (issue 15): with STEERLAB_MAX_CONNECTIONS requests held
open (slow bodies), the next request gets a prompt 503 instead of another file descriptor and task;
once they end the server answers again. The tiny model and a tiny SAE, in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

CAP = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path, model_dir: Path, max_connections: int):
    """Start ``steerlab serve`` with ``max_connections``; yields its URL and stops it afterwards."""
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    torch.manual_seed(0)
    create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1")).save(root / "sae")
    port = _free_port()
    env = {**os.environ, "STEERLAB_HOME": str(root / "home"), "STEERLAB_MAX_CONNECTIONS": str(max_connections)}
    env["STEERLAB_HEADER_TIMEOUT_S"] = "60"  # only the cap may turn requests away here
    log = (root / "server.log").open("w")
    command = [sys.executable, "-m", "steerlab.cli", "serve", "--model", str(model_dir), "--sae", str(root / "sae")]
    command += ["--open", "--port", str(port), "--server-db", str(root / "s.db")]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(root / 'server.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up in 180 s")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield url, port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def capped(tmp_path_factory, tiny_model_dir):
    yield from serve(tmp_path_factory.mktemp("cap"), tiny_model_dir, CAP)


def _slow_body(port: int) -> socket.socket:
    """A chat request whose head is sent whole and whose 4 KB body never finishes: a request in flight."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n"
    sock.sendall(f"{head}\r\n".encode() + b'{"messages": [')
    return sock


def test_requests_past_the_connection_cap_get_a_prompt_503_and_the_server_recovers(capped):
    url, port = capped
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    held = [_slow_body(port) for _ in range(CAP)]
    try:
        time.sleep(0.5)  # the server has accepted them and is waiting for their bodies
        for sock in held:  # all admitted: none was answered (a 503 would be)
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(100)
        start = time.monotonic()
        refused = httpx.get(f"{url}/health", timeout=10)
        assert refused.status_code == 503, (refused.status_code, refused.text[:200])
        assert time.monotonic() - start < 2
        chat = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 503
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while (status := httpx.get(f"{url}/health", timeout=5).status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # the server notices the closed connections
    assert status == 200
    body = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 2}
    assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200
