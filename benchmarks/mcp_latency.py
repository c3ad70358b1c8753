"""Agent-tool latency through MCP vs the same call in process, on one model.

    python benchmarks/mcp_latency.py [--model default] [--repeats 20] [--out docs/bench_mcp_latency.json]

Four ways to call the same tool with the same arguments, each timed per call (one untimed call first):
  in_process   ``LabTools`` method called directly (the baseline: what the tool itself costs)
  mcp_stdio    the official MCP client -> ``steerlab mcp`` (a subprocess, JSON-RPC over its stdin/stdout)
  mcp_http     the official MCP client -> ``steerlab serve``'s /mcp (streamable HTTP, stateless, with an API
               key: authentication, rate-limit accounting and one HTTP request per call)
  rest_routes  the equivalent REST routes on that same server (/v1/features/search, /v1/features/873,
               /v1/inspect): the HTTP baseline (a route's work differs a little: the feature route returns more)
Calls run one after another (no concurrency). ``overhead_ms``: stdio p50 minus in-process p50, and /mcp p50
minus the route's p50. Prints JSON and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

CALLS = [
    ("search_features", {"query": "French language", "top_k": 10}),
    ("get_feature", {"index": 873, "examples": 3, "neighbours": 5, "tokens": 8}),
    ("inspect", {"text": "Bonjour, comment allez-vous aujourd'hui ?", "top_k": 10}),
    ("research_log_read", {}),
]


def stats(times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "n": len(ms),
    }


def in_process(model: str, repeats: int, home: Path) -> dict:
    """The baseline: the lab loaded and the tools called as ``steerlab mcp`` does (the SDK runs each synchronous
    tool in an anyio worker thread), minus the protocol."""
    from steerlab.agents.tools import LabTools, ResearchLog
    from steerlab.engine.lab import Lab

    lab = Lab.load(model, max_batch=4)
    try:
        tools = LabTools(lab, ResearchLog(home / "logs", "bench"))

        async def timed() -> dict:
            out = {}
            for name, args in CALLS:
                await anyio.to_thread.run_sync(lambda: getattr(tools, name)(**args))
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    await anyio.to_thread.run_sync(lambda: getattr(tools, name)(**args))
                    times.append(time.perf_counter() - start)
                out[name] = stats(times)
            return out

        return anyio.run(timed)
    finally:
        lab.close()


def rest_routes(url: str, key: str, repeats: int) -> dict:
    """The equivalent REST routes on the same server (the HTTP baseline: keys, rate limits and JSON included)."""
    import httpx

    requests = {
        "search_features": ("GET", "/v1/features/search", {"params": {"q": "French language", "top_k": 10}}),
        "get_feature": ("GET", "/v1/features/873", {"params": {"neighbors": 5}}),
        "inspect": (
            "POST",
            "/v1/inspect",
            {"json": {"messages": [{"role": "user", "content": CALLS[2][1]["text"]}], "top_k": 10}},
        ),
    }
    out = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as http:
        for name, (method, path, kwargs) in requests.items():
            http.request(method, path, **kwargs).raise_for_status()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                http.request(method, path, **kwargs).raise_for_status()
                times.append(time.perf_counter() - start)
            out[name] = stats(times)
    return out


async def timed_session(session, repeats: int) -> dict:
    out = {}
    for name, args in CALLS:
        first = await session.call_tool(name, args)
        assert not first.is_error, (name, first.content)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = await session.call_tool(name, args)
            times.append(time.perf_counter() - start)
            assert not result.is_error
        out[name] = stats(times)
    return out


async def over_stdio(model: str, repeats: int, env: dict) -> dict:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "steerlab.cli", "mcp", "--model", model], env=env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await timed_session(session, repeats)


async def over_http(url: str, key: str, repeats: int) -> dict:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=300) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        return await timed_session(session, repeats)


def serve(model: str, env: dict, root: Path) -> tuple[subprocess.Popen, str, str]:
    import httpx

    key = json.loads(
        subprocess.run(
            [sys.executable, "-m", "steerlab.cli", "keys", "create", "bench"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    )["api_key"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "steerlab.cli", "serve", "--model", model, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((root / "serve.log").read_text()[-2000:])
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("model"):
                return process, url, key
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/bench_mcp_latency.json"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "STEERLAB_HOME": str(root / "home"),
        "STEERLAB_DB_PATH": str(root / "server.db"),
    }
    os.environ["STEERLAB_HOME"] = env["STEERLAB_HOME"]
    results = {"in_process": in_process(args.model, args.repeats, root / "home")}
    results["mcp_stdio"] = anyio.run(over_stdio, args.model, args.repeats, env)
    process, url, key = serve(args.model, env, root)
    try:
        results["rest_routes"] = rest_routes(url, key, args.repeats)
        results["mcp_http"] = anyio.run(over_http, url, key, args.repeats)
    finally:
        process.terminate()
        process.wait(30)
    overhead = {
        "mcp_stdio_vs_in_process": {
            name: round(results["mcp_stdio"][name]["p50_ms"] - results["in_process"][name]["p50_ms"], 2)
            for name, _ in CALLS
        },
        "mcp_http_vs_rest_routes": {
            name: round(results["mcp_http"][name]["p50_ms"] - results["rest_routes"][name]["p50_ms"], 2)
            for name in results["rest_routes"]
        },
    }
    out = {
        "command": f"python benchmarks/mcp_latency.py --model {args.model} --repeats {args.repeats}",
        "model": args.model,
        "calls": {name: call_args for name, call_args in CALLS},
        "cpu_count": os.cpu_count(),
        "results": results,
        "overhead_ms": overhead,
    }
    text = json.dumps(out, indent=1)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
