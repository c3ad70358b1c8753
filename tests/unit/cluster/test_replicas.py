"""``steerlab serve --replicas 2`` on the tiny model and a tiny SAE: a real server process whose decoding runs
on two Ray actors. Steered and plain replies equal the in-process lab's, streams stream, and a replica
killed mid-stream ends its requests cleanly (an error event, a 503) and is replaced."""

from __future__ import annotations

import concurrent.futures
import json
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

from steerlab.engine.lab import Lab, sampling_params
from steerlab.models.loader import load_model
from steerlab.sae.bundled import load_sae_for
from tests.unit.server.test_steered_chat import controller

pytest.importorskip("ray")

MSG = [{"role": "user", "content": "the cat sat on the mat"}]
REPLICA = "ray::EngineReplica"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica_pids() -> list[int]:
    """Processes of live replica actors on this machine (Ray titles them ``ray::EngineReplica...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(REPLICA.encode()):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return sorted(pids)


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """(url, in-process Lab over the same model and SAE) with ``serve --replicas 2`` running."""
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    root = tmp_path_factory.mktemp("replicas")
    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1"))
    sae.requires_grad_(False).feature_scale.fill_(3.0)
    sae.save(root / "sae")
    port = _free_port()
    env = {**os.environ, "STEERLAB_HOME": str(root / "home"), "RAY_USAGE_STATS_ENABLED": "0"}
    env |= {"STEERLAB_MAX_COMPLETION_TOKENS": "400", "STEERLAB_MAX_BATCH": "1"}  # one at a time: streams last
    log = (root / "server.log").open("w")
    command = [sys.executable, "-m", "steerlab.cli", "serve", "--model", str(tiny_model_dir), "--sae"]
    command += [str(root / "sae"), "--open", "--port", str(port), "--replicas", "2", "--server-db", str(root / "s.db")]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).json().get("model"):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("server did not come up in 300 s")
        lm = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
        lab = Lab(lm, load_sae_for(lm, root / "sae"), max_batch=4)  # as the replicas load it (steering unit)
        yield url, lab, process, root / "server.log"
        lab.close()
    finally:
        ours = descendants(process.pid)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        time.sleep(2)
        for pid in ours:  # whatever of its Ray cluster outlived it (never another user's processes)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def chat(url: str, timeout: float = 120, **extra) -> httpx.Response:
    body = {"messages": MSG, "max_completion_tokens": 24, "temperature": 0, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


def local_reply(lab: Lab, variant=None, tokens: int = 24) -> str:
    params = sampling_params(max_completion_tokens=tokens, temperature=0)
    return "".join(e.text for e in lab.generate(MSG, params, variant))


def test_replies_equal_the_in_process_lab_steered_or_not(served):
    url, lab, *_ = served
    assert len(replica_pids()) == 2
    steer = controller(lab, 5, 8.0)
    plain, steered = chat(url), chat(url, controller=steer)
    assert plain.status_code == steered.status_code == 200, plain.text + steered.text
    plain_text = plain.json()["choices"][0]["message"]["content"]
    steered_text = steered.json()["choices"][0]["message"]["content"]
    assert plain_text == local_reply(lab) and steered_text == local_reply(lab, steer) and plain_text != steered_text
    # mixed concurrently over both replicas, each request keeps its own steering
    variants = [None, steer, controller(lab, 17, -6.0), None, steer, controller(lab, 17, -6.0)]
    with concurrent.futures.ThreadPoolExecutor(len(variants)) as pool:
        replies = list(pool.map(lambda c: chat(url, **({"controller": c} if c else {})), variants))
    texts = [r.json()["choices"][0]["message"]["content"] for r in replies]
    assert texts == [local_reply(lab, c) for c in variants]


def test_streaming_through_a_replica(served):
    url, lab, *_ = served
    body = {"messages": MSG, "max_completion_tokens": 24, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == local_reply(lab)
    assert [c["choices"][0]["gf_token_index"] for c in chunks] == list(range(len(chunks)))


def _stream_until_end(url: str, started: concurrent.futures.Future | None = None) -> tuple[str, str]:
    """('done' | 'error', text) of a long stream; sets ``started`` at its first token."""
    body = {"messages": MSG, "max_completion_tokens": 400, "temperature": 0, "stream": True}
    text = ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            if started is not None and not started.done():
                started.set_result(True)
            if line == "data: [DONE]":
                return "done", text
            data = json.loads(line[6:])
            if "error" in data:
                return "error", data["error"]["message"]
            text += data["choices"][0]["delta"]["content"]
    return "cut", text


def test_a_replica_killed_mid_stream_fails_its_requests_cleanly_and_is_replaced(served):
    url, lab, process, log = served
    before = replica_pids()
    assert len(before) == 2
    full = local_reply(lab, tokens=400)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        starts = [concurrent.futures.Future() for _ in range(6)]
        streams = [pool.submit(_stream_until_end, url, s) for s in starts]
        # Kill as soon as two streams decode: with max_batch 1 and the least-loaded replica picked, one runs on
        # each replica, so the killed one is mid-stream (waiting for all six let it sit idle or serve a plain
        # request at the kill, and no stream failed); the other four are still to come.
        deadline = time.monotonic() + 60
        while sum(s.done() for s in starts) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(before[0], signal.SIGKILL)
        plain = [pool.submit(chat, url, max_completion_tokens=400) for _ in range(2)]
        ended = [f.result(timeout=90) for f in streams]  # no hang
        answers = [f.result(timeout=90) for f in plain]
    errors = [message for kind, message in ended if kind == "error"]
    assert errors and all("replica" in m and "died" in m for m in errors), ended
    assert all(text == full for kind, text in ended if kind == "done")
    assert {a.status_code for a in answers} <= {200, 503}
    for a in answers:
        if a.status_code == 503:
            assert a.json()["error"]["code"] == "replica_lost" and a.headers.get("retry-after")
    # Ray puts a new replica in the dead one's place; the API serves on both again
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (len(replica_pids()) < 2 or before[0] in replica_pids()):
        time.sleep(1)
    assert len(replica_pids()) == 2 and before[0] not in replica_pids()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # served whether or not the new one has loaded
        after = list(pool.map(lambda _: chat(url, timeout=240), range(4)))
    assert [r.status_code for r in after] == [200] * 4
    assert {r.json()["choices"][0]["message"]["content"] for r in after} == {local_reply(lab)}
    # once the replacement has loaded, the other original can go too: the replacement serves alone
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and "is back" not in log.read_text():  # the server saw it answer
        time.sleep(1)
    assert "is back" in log.read_text()
    os.kill(before[1], signal.SIGKILL)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        alone = list(pool.map(lambda _: chat(url, timeout=240), range(4)))
    assert [r.status_code for r in alone] == [200] * 4
    assert {r.json()["choices"][0]["message"]["content"] for r in alone} == {local_reply(lab)}
    assert process.poll() is None
