"""Many researchers on one server: simulated users against a real ``steerlab serve`` process.

    python benchmarks/load.py --users 200 --seconds 60 --out docs/bench_load.json

Starts the server (open mode, the bundled model and feature database, or ``--db``), measures each
route alone first (one user, the baseline in the same run), then lets ``--users`` users loop for
``--seconds``: each picks search, inspect, a steered chat or a streamed steered chat, waits for the
answer, thinks for 0.5-2 s and goes again. New requests stop at the deadline; those in flight finish.
Reports per route: requests, errors, p50/p99 latency (and time to first token for streams), the
p50 slowdown against the unloaded baseline, and the server's resident memory before and after.
Rate limits are raised for the run: this measures capacity, not the per-key limits.

    python benchmarks/load.py --noisy --users 50 --seconds 60 --out docs/bench_noisy_neighbour.json

    python benchmarks/load.py --replicas 1,2 --mix chat=0.5,stream=0.5 --users 16 --seconds 30 \
        --out docs/bench_replicas.json

Replicas: the same load against ``serve --replicas 1`` and then ``--replicas 2`` (engine replicas as
Ray actors, docs/cluster.md), each server started and stopped in turn; ``--mix`` keeps to the routes that
decode. Reports each run and its requests/s against the first.

Noisy neighbour: ``--users`` users only chat (non-streamed, ``--tokens`` each), first alone for
``--seconds`` (the quiet run), then for ``--seconds`` more while one more client sends the heaviest
requests the server's budgets allow (``--analysis-tokens``, the default STEERLAB_MAX_ANALYSIS_TOKENS),
``--noisy-streams`` at a time: contrasts of two conversations a side and inspects of one conversation,
each at the budget. Reports the chatters' p50/p99 in both runs and their ratio. The server is in open
mode, so every client shares one key; the limits are raised as above: this measures how the model
is shared, not the per-key quotas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

STEERLAB = str(Path(sys.executable).parent / "steerlab")
EMBER = "/api/inference/v1"
QUERIES = [
    "French",
    "code",
    "pirates",
    "numbers",
    "questions",
    "Python functions",
    "greetings",
    "colors",
    "cooking",
    "weather",
    "emotions",
    "legal text",
    "shell commands",
    "dates",
    "animals",
    "music",
]
PROMPTS = [
    "Tell me about your day.",
    "What is a good name for a cat?",
    "Explain rain to a child.",
    "Write one sentence about the sea.",
    "How do I boil an egg?",
    "Say something kind.",
]
MIX = {"search": 0.4, "inspect": 0.2, "chat": 0.2, "stream": 0.2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(db: str | None, workdir: Path, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "STEERLAB_REQUESTS_PER_MINUTE": "10000000", "STEERLAB_TOKENS_PER_MINUTE": "1000000000"}
    cmd = [STEERLAB, "serve", "--open", "--port", str(port), "--server-db", str(workdir / "server.db"), *extra]
    if db:
        cmd += ["--db", db]
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("model"):
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("server did not come up in 300 s")


class Actions:
    """One request of each kind; each returns (seconds, time to first token or None)."""

    def __init__(self, http: httpx.AsyncClient, model: str, controllers: list[dict], tokens: int):
        self.http, self.model, self.controllers, self.tokens = http, model, controllers, tokens

    async def search(self, rng: random.Random):
        r = await self.http.get(
            f"{EMBER}/features/search",
            params={"query": rng.choice(QUERIES), "page": 1, "perPage": 10, "model": self.model},
        )
        r.raise_for_status()

    async def inspect(self, rng: random.Random):
        messages = [
            {"role": "user", "content": rng.choice(PROMPTS)},
            {"role": "assistant", "content": "Sure. Here is a short answer in plain words."},
        ]
        r = await self.http.post(
            f"{EMBER}/chat-attribution/compute-features",
            json={"messages": messages, "model": self.model, "aggregate_by": "max"},
        )
        r.raise_for_status()

    def _chat_body(self, rng: random.Random, stream: bool) -> dict:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
            "max_tokens": self.tokens,
            "temperature": 0.7,
            "seed": rng.randrange(1 << 30),
            "stream": stream,
            "controller": rng.choice(self.controllers),
        }

    async def chat(self, rng: random.Random):
        r = await self.http.post("/v1/chat/completions", json=self._chat_body(rng, stream=False))
        r.raise_for_status()
        if not r.json()["choices"][0]["message"]["content"]:
            raise RuntimeError("empty reply")

    async def stream(self, rng: random.Random) -> float:
        start = time.perf_counter()
        first = None
        async with self.http.stream("POST", "/v1/chat/completions", json=self._chat_body(rng, stream=True)) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if line.startswith("data: ") and first is None and '"content"' in line:
                    first = time.perf_counter() - start
                if line == "data: [DONE]":
                    break
        if first is None:
            raise RuntimeError("stream ended without a token")
        return first


async def controllers_for(http: httpx.AsyncClient, model: str, count: int) -> list[dict]:
    """``count`` different one-feature nudges (real feature ids from the server's lookup)."""
    indices = random.Random(0).sample(range(1000, 9000), count)
    r = await http.post(f"{EMBER}/features/lookup", json={"indices": indices, "model": model})
    r.raise_for_status()
    features = r.json()["features"]
    return [
        {
            "name": f"load-{f['index_in_sae']}",
            "scopes": [],
            "nonzero_strength_threshold": None,
            "min_nudge_entropy": None,
            "max_nudge_entropy": None,
            "interventions": [
                {
                    "mode": "nudge",
                    "value": 0.4,
                    "features": {
                        "features": [
                            {
                                "uuid": f["uuid"],
                                "label": f["label"],
                                "index_in_sae": f["index_in_sae"],
                                "max_activation_strength": 1.0,
                            }
                        ]
                    },
                }
            ],
        }
        for f in features
    ]


async def timed(actions: Actions, kind: str, rng: random.Random, log: dict):
    start = time.perf_counter()
    try:
        ttft = await getattr(actions, kind)(rng)
        log[kind]["latency"].append(time.perf_counter() - start)
        if ttft is not None:
            log[kind]["ttft"].append(ttft)
    except Exception as err:  # noqa: BLE001 - every failure counts as an error, whatever it is
        log[kind]["errors"].append(f"{type(err).__name__}: {err}"[:200])


def new_log() -> dict:
    return {k: {"latency": [], "ttft": [], "errors": []} for k in MIX}


async def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="steerlab-load-"))
    process, url = start_server(args.db, workdir, shlex.split(args.serve_args))
    limits = httpx.Limits(max_connections=args.users + 20, max_keepalive_connections=args.users + 20)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as http:
            model = (await http.get("/health")).json()["model"]
            actions = Actions(http, model, await controllers_for(http, model, 32), args.tokens)
            rng = random.Random(1)
            baseline = new_log()
            for kind in MIX:  # unloaded: one user, one request at a time (first call warms up)
                for _ in range(args.baseline_requests + 1):
                    await timed(actions, kind, rng, baseline)
                baseline[kind]["latency"] = baseline[kind]["latency"][1:]
            rss_before = rss_mb(process.pid)
            loaded = new_log()
            deadline = time.monotonic() + args.seconds

            async def user(n: int):
                urng = random.Random(1000 + n)
                await asyncio.sleep(urng.uniform(0, 2))  # users arrive over the first seconds
                while time.monotonic() < deadline:
                    kind = urng.choices(list(MIX), weights=list(MIX.values()))[0]
                    await timed(actions, kind, urng, loaded)
                    await asyncio.sleep(urng.uniform(0.5, 2.0))

            started = time.monotonic()
            await asyncio.gather(*(user(n) for n in range(args.users)))
            wall = time.monotonic() - started
            rss_after = rss_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return report(args, baseline, loaded, wall, rss_before, rss_after)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def report(args, baseline: dict, loaded: dict, wall: float, rss_before: float, rss_after: float) -> dict:
    routes = {}
    for kind in MIX:
        lat, base = loaded[kind]["latency"], baseline[kind]["latency"]
        routes[kind] = {
            "requests": len(lat) + len(loaded[kind]["errors"]),
            "errors": len(loaded[kind]["errors"]),
            "p50_s": pct(lat, 0.5),
            "p99_s": pct(lat, 0.99),
            "unloaded_p50_s": pct(base, 0.5),
            "p50_slowdown": round(pct(lat, 0.5) / pct(base, 0.5), 1) if lat and base else None,
            "error_examples": loaded[kind]["errors"][:3],
        }
        if loaded[kind]["ttft"]:
            routes[kind].update(ttft_p50_s=pct(loaded[kind]["ttft"], 0.5), ttft_p99_s=pct(loaded[kind]["ttft"], 0.99))
    total = sum(r["requests"] for r in routes.values())
    errors = sum(r["errors"] for r in routes.values())
    return {
        "users": args.users,
        "seconds": args.seconds,
        "wall_s": round(wall, 1),
        "chat_tokens": args.tokens,
        "requests": total,
        "errors": errors,
        "error_rate": round(errors / total, 4) if total else None,
        "requests_per_s": round(total / wall, 1),
        "server_rss_mb_before": round(rss_before),
        "server_rss_mb_after": round(rss_after),
        "routes": routes,
    }


FILLER = (
    "The committee met on Tuesday to review the harbour survey. Tides, silt and the old pier were discussed "
    "at length, and the engineers agreed to take new soundings before the spring storms. "
)


async def filler_of(http: httpx.AsyncClient, model: str, tokens: int) -> list[dict]:
    """A one-message conversation of about ``tokens`` tokens (counted by the server's tokenizer, template included)."""

    async def count(text: str) -> int:
        messages = [{"role": "user", "content": text}]
        r = await http.post(f"{EMBER}/chat/tokenize", json={"messages": messages, "model": model})
        r.raise_for_status()
        return len(r.json()["tokens"])

    per = await count(FILLER * 4) - await count(FILLER * 2)  # tokens per two fillers, template excluded
    reps = max(1, int(2 * (tokens - await count(FILLER)) / per) + 1)
    while reps > 1 and await count(FILLER * reps) > tokens:
        reps -= 1
    return [{"role": "user", "content": FILLER * reps}]


async def run_noisy(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="steerlab-noisy-"))
    process, url = start_server(args.db, workdir, shlex.split(args.serve_args))
    limits = httpx.Limits(max_connections=args.users + 40, max_keepalive_connections=args.users + 40)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as http:
            model = (await http.get("/health")).json()["model"]
            actions = Actions(http, model, await controllers_for(http, model, 32), args.tokens)
            budget = args.analysis_tokens
            quarter = await filler_of(http, model, budget // 4 - 8)
            whole = await filler_of(http, model, budget - 8)
            heavy = {
                "contrast": ("/v1/contrast", {"dataset_1": [quarter, quarter], "dataset_2": [quarter, quarter]}),
                "inspect": ("/v1/inspect", {"messages": whole}),
            }
            for path, body in heavy.values():  # both are legal: at the budget, not over it
                r = await http.post(path, json=body)
                if r.status_code != 200:
                    raise SystemExit(f"heavy request refused: {r.status_code} {r.text[:300]}")
            await timed(actions, "chat", random.Random(0), new_log())  # warm-up

            async def phase(noisy: bool) -> tuple[dict, dict]:
                chats, heavies = new_log(), {"latency": [], "errors": [], "kinds": []}
                deadline = time.monotonic() + args.seconds

                async def user(n: int):
                    urng = random.Random(1000 + n)
                    await asyncio.sleep(urng.uniform(0, 2))
                    while time.monotonic() < deadline:
                        await timed(actions, "chat", urng, chats)
                        await asyncio.sleep(urng.uniform(0.5, 2.0))

                async def neighbour(n: int):
                    kinds = ["contrast", "inspect"] if n % 2 == 0 else ["inspect", "contrast"]
                    i = 0
                    while time.monotonic() < deadline:
                        kind = kinds[i % 2]
                        i += 1
                        path, body = heavy[kind]
                        start = time.perf_counter()
                        try:
                            r = await http.post(path, json=body)
                            r.raise_for_status()
                            heavies["latency"].append(time.perf_counter() - start)
                            heavies["kinds"].append(kind)
                        except Exception as err:  # noqa: BLE001
                            heavies["errors"].append(f"{type(err).__name__}: {err}"[:200])

                noise = [asyncio.create_task(neighbour(n)) for n in range(args.noisy_streams)] if noisy else []
                await asyncio.gather(*(user(n) for n in range(args.users)))
                for task in noise:  # the chatters are done: an analysis still running is not waited for
                    task.cancel()
                await asyncio.gather(*noise, return_exceptions=True)
                return chats["chat"], heavies

            quiet, _ = await phase(noisy=False)
            loud, heavies = await phase(noisy=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    def summary(log: dict) -> dict:
        lat = log["latency"]
        return {
            "requests": len(lat) + len(log["errors"]),
            "errors": len(log["errors"]),
            "p50_s": pct(lat, 0.5),
            "p99_s": pct(lat, 0.99),
            "error_examples": log["errors"][:3],
        }

    q, n = summary(quiet), summary(loud)
    return {
        "mode": "noisy neighbour",
        "chatters": args.users,
        "seconds_per_run": args.seconds,
        "chat_tokens": args.tokens,
        "analysis_tokens": args.analysis_tokens,
        "noisy_streams": args.noisy_streams,
        "quiet": q,
        "noisy": n,
        "p50_ratio": round(n["p50_s"] / q["p50_s"], 2) if q["p50_s"] and n["p50_s"] else None,
        "p99_ratio": round(n["p99_s"] / q["p99_s"], 2) if q["p99_s"] and n["p99_s"] else None,
        "heavy_requests": {
            "completed": len(heavies["latency"]),
            "contrast": heavies["kinds"].count("contrast"),
            "inspect": heavies["kinds"].count("inspect"),
            "p50_s": pct(heavies["latency"], 0.5),
            "max_s": round(max(heavies["latency"]), 1) if heavies["latency"] else None,
            "errors": len(heavies["errors"]),
            "error_examples": heavies["errors"][:3],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60, help="How long users keep sending new requests.")
    ap.add_argument("--tokens", type=int, default=16, help="max_tokens of each chat.")
    ap.add_argument("--db", default=None, help="Feature database (default: the one bundled with the SAE).")
    ap.add_argument("--baseline-requests", type=int, default=5, help="Unloaded requests per route.")
    ap.add_argument("--timeout", type=float, default=600, help="Client timeout per request, seconds.")
    ap.add_argument("--out", default=None, help="Also write the JSON here.")
    ap.add_argument("--noisy", action="store_true", help="Noisy-neighbour mode (see above).")
    ap.add_argument("--noisy-streams", type=int, default=2, help="Heavy requests the neighbour keeps in flight.")
    ap.add_argument(
        "--analysis-tokens", type=int, default=4096, help="Tokens of each heavy request (the server's budget)."
    )
    ap.add_argument("--serve-args", default="", help="More 'steerlab serve' flags, e.g. '--replicas 2'.")
    ap.add_argument("--mix", default=None, help="Route weights, e.g. chat=0.5,stream=0.5 (default: " + str(MIX) + ").")
    ap.add_argument(
        "--replicas",
        default=None,
        help="Comma-separated replica counts, e.g. 1,2: the same load once per count ('serve --replicas N'), "
        "one after the other in this run, with requests/s of each count against the first.",
    )
    args = ap.parse_args()
    if args.mix:
        weights = {k: float(v) for k, _, v in (part.partition("=") for part in args.mix.split(","))}
        unknown = set(weights) - set(MIX)
        if unknown:
            raise SystemExit(f"--mix: unknown routes {sorted(unknown)}; known: {sorted(MIX)}")
        MIX.clear()
        MIX.update({k: w for k, w in weights.items() if w > 0})
    if args.replicas:
        base_args, runs = args.serve_args, {}
        for count in [int(n) for n in args.replicas.split(",")]:
            args.serve_args = f"{base_args} --replicas {count}"
            runs[count] = asyncio.run(run(args))
        first = next(iter(runs.values()))
        result = {
            "mix": MIX,
            "runs": {f"replicas_{n}": r for n, r in runs.items()},
            "requests_per_s_vs_first": {
                f"replicas_{n}": round(r["requests_per_s"] / first["requests_per_s"], 2) for n, r in runs.items()
            },
        }
        print(json.dumps(result, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2))
        return
    result = asyncio.run(run_noisy(args) if args.noisy else run(args))
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
