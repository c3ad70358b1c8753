"""``steerlab serve --replicas N``: N engine replicas as Ray actors behind the one API.

The server process keeps its whole lab (model, SAE, feature database): it authenticates, rate-limits,
tokenizes, compiles every request's steering and runs the analyses, exactly as without replicas. Only
decoding moves: ``ReplicaEngine`` takes the place of ``lab.engine`` for ``submit`` and sends each chat
to the replica with the fewest requests in flight, where an ``EngineReplica`` actor (its own model,
SAE and batching engine) decodes it and streams the tokens back. Per-request steering travels as the
compiled plan and is rebuilt against the replica's copy of the same SAE; keys, variants and limits never
leave the server process, so every replica shares them.

A replica that dies (its process or node lost) is restarted by Ray in its place (``max_restarts``); the
requests it was decoding end at once with an error event (``ReplicaLost``: a 503 for a non-streaming
request, an ``error`` event on a stream), never a hang, and new requests go to the live replicas.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from steerlab.engine.batcher import Engine, EngineBusy
from steerlab.engine.sequence import RowEditor
from steerlab.engine.stream import Stream, TokenEvent
from steerlab.errors import BusyError, SteerlabError
from steerlab.generation.sampler import SamplingParams

log = logging.getLogger("steerlab.cluster")

REPLICA_RESTARTS = -1
"""Ray restarts a dead replica without limit: the API's capacity comes back on its own."""


class ReplicaLost(BusyError):
    """The replica decoding a request died; the request can be sent again (503)."""

    code = "replica_lost"

    def __init__(self, replica: int, retry_after: int = 5) -> None:
        super().__init__(
            f"engine replica {replica} died while decoding this request (it is being replaced); "
            f"retry after {retry_after} s",
            retry_after,
        )


def _editor_spec(editor: RowEditor | None) -> Any:
    """What a replica needs to rebuild ``editor`` against its own SAE: ``("plan", plan, aborts, span)`` for the
    server's compiled steering (``RowSteering``), else the editor itself (it must pickle)."""
    from steerlab.steering.batch import RowSteering

    if editor is None:
        return None
    if isinstance(editor, RowSteering):
        (plan,) = editor.batch.plans
        return ("plan", plan, sorted(editor.abort_events), editor.span)
    return ("editor", editor)


class EngineReplica:
    """One replica (a Ray actor, async): the model and SAE loaded in its own process, its own engine."""

    def __init__(
        self, model: str, sae_path: str | None, dtype: str | None, device: str | None, max_batch: int, max_queue: int
    ) -> None:
        from steerlab.engine.lab import Lab
        from steerlab.models.loader import load_model
        from steerlab.sae.bundled import load_sae_for

        lm = load_model(model, dtype=dtype, device=device)
        self.lab = Lab(lm, load_sae_for(lm, sae_path), max_batch=max_batch, max_queue=max_queue)
        self.streams: dict[str, Stream] = {}

    def ready(self) -> int:
        """The replica's process id, once it is loaded."""
        import os

        return os.getpid()

    async def generate(
        self, request_id: str, ids: list[int], params: SamplingParams, spec: Any
    ) -> AsyncIterator[tuple[TokenEvent, int, int]]:
        """Stream ``(event, prompt_tokens, completion_tokens)`` of one generation."""
        editor = None
        if spec is not None and spec[0] == "plan":
            from steerlab.steering.batch import RowSteering

            assert self.lab.sae is not None
            editor = RowSteering(self.lab.sae, spec[1], frozenset(spec[2]))
            editor.read_prompt(spec[3] if len(spec) > 3 else None)
        elif spec is not None:
            editor = spec[1]
        stream = self.lab.engine.submit(ids, params, editor, loop=asyncio.get_running_loop())
        self.streams[request_id] = stream
        try:
            async for event in stream:
                yield event, stream.prompt_tokens, stream.completion_tokens
        finally:
            self.streams.pop(request_id, None)
            stream.cancel()

    def cancel(self, request_id: str) -> None:
        stream = self.streams.get(request_id)
        if stream is not None:
            stream.cancel()

    def in_flight(self) -> int:
        return len(self.streams)


class ReplicaStream(Stream):
    """The server-side handle of a generation on a replica: the same events, ``cancel`` and token counts
    as a local engine's stream. ``failure`` is set when the replica died (``ReplicaLost``) or was full."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, prompt_tokens: int) -> None:
        super().__init__(loop)
        self.prompt_tokens = prompt_tokens
        self.failure: SteerlabError | None = None
        self.finished = False
        self.on_cancel: Any = None

    def cancel(self) -> None:
        if not self.cancelled.is_set() and not self.finished and self.on_cancel is not None:
            self.on_cancel()
        super().cancel()


class ReplicaEngine:
    """Stands for ``lab.engine``: ``submit`` goes to the replicas; everything else (``outside`` for the
    analyses, ``max_positions``...) is the server's own engine, which keeps the model for them.

    A replica whose call fails for any reason but a refusal of ours is marked down until it answers
    ``ready`` again (Ray restarts it meanwhile); requests go to the replicas that are up. A request that
    had not received a token when its replica died is sent to another replica instead; one that had fails
    with ``ReplicaLost``: its text so far cannot be continued elsewhere bit for bit."""

    def __init__(self, local: Engine, actors: list[Any], max_queue: int, probe_every_s: float = 1.0) -> None:
        self.local, self.actors, self.max_queue = local, list(actors), max_queue
        self.in_flight = [0] * len(actors)
        self.up = [True] * len(actors)
        self.lost = [0] * len(actors)
        """Requests each replica failed by dying."""
        self.probe_every_s = probe_every_s
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False

    # the parts of Engine's interface that routes and metrics read
    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)

    @property
    def queue_depth(self) -> int:
        return 0

    @property
    def active_count(self) -> int:
        return sum(self.in_flight)

    def outside(self) -> AbstractContextManager[None]:
        return self.local.outside()

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        editor: RowEditor | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Stream:
        """Checked as the local engine checks, then started on the least-loaded replica that is up."""
        from steerlab.errors import InvalidInputError

        params.validate()
        if not prompt_ids:
            raise InvalidInputError("the prompt is empty", field="messages")
        if len(prompt_ids) + params.max_new_tokens > self.local.max_positions:
            raise InvalidInputError(
                f"prompt ({len(prompt_ids)} tokens) + max_new_tokens "
                f"({params.max_new_tokens}) exceeds the model's context of {self.local.max_positions}",
                field="messages",
            )
        job = (list(prompt_ids), params, _editor_spec(editor))
        replica = self._pick()
        stream = ReplicaStream(loop, len(prompt_ids))
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._pump_async(replica, job, stream), loop)
        else:
            threading.Thread(target=self._pump_sync, args=(replica, job, stream), daemon=True).start()
        return stream

    def _pick(self, avoid: int | None = None) -> int:
        """The least-loaded replica that is up (counted in flight from now on); 503 when none is."""
        with self._lock:
            if sum(self.in_flight) >= self.max_queue * len(self.actors):
                raise EngineBusy(sum(self.in_flight))
            candidates = [i for i in range(len(self.actors)) if self.up[i] and i != avoid]
            if not candidates:
                raise BusyError(f"no engine replica is up ({len(self.actors)} being replaced); retry after 5 s", 5)
            replica = min(candidates, key=lambda i: self.in_flight[i])
            self.in_flight[replica] += 1
            return replica

    def _start(self, replica: int, job: tuple, stream: ReplicaStream) -> Any:
        request_id = f"r{next(self._ids)}"
        actor = self.actors[replica]
        stream.on_cancel = lambda: actor.cancel.remote(request_id)
        return actor.generate.remote(request_id, *job)

    def _deliver(self, stream: ReplicaStream, item: tuple[TokenEvent, int, int]) -> None:
        event, stream.prompt_tokens, stream.completion_tokens = item
        if event.finish_reason is not None:
            stream.finished = True
        stream.push(event)

    def _refused(self, err: BaseException) -> SteerlabError | None:
        """Our own error raised on the replica (a full queue...), or None when the replica itself failed."""
        import ray.exceptions

        cause = err.cause if isinstance(err, ray.exceptions.RayTaskError) else None
        return cause if isinstance(cause, SteerlabError) else None

    def _lose(self, replica: int, err: BaseException) -> None:
        with self._lock:
            self.lost[replica] += 1
            if not self.up[replica]:
                return
            self.up[replica] = False
        log.warning("engine replica %d is down (%s); waiting for its replacement", replica, type(err).__name__)
        threading.Thread(target=self._await_replacement, args=(replica,), daemon=True).start()

    def _await_replacement(self, replica: int) -> None:
        import ray

        while not self._closed:
            try:
                ray.get(self.actors[replica].ready.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - restarting: ask again
                time.sleep(self.probe_every_s)
                continue
            with self._lock:
                self.up[replica] = True
            log.warning("engine replica %d is back", replica)
            return

    def _end(self, replica: int, stream: ReplicaStream, failure: SteerlabError, index: int) -> None:
        stream.failure = failure
        stream.finished = True
        stream.push(TokenEvent("", None, index, finish_reason="error", error=failure.message))

    def _after_failure(self, replica: int, err: BaseException, stream: ReplicaStream, index: int) -> int | None:
        """The replica to try next (None: the stream was ended with an error)."""
        refused = self._refused(err)
        if refused is not None:
            self._end(replica, stream, refused, index)
            return None
        self._lose(replica, err)
        if index == 0 and not stream.cancelled.is_set():  # nothing shown yet: another replica starts it afresh
            try:
                return self._pick(avoid=replica)
            except BusyError:
                pass
        self._end(replica, stream, ReplicaLost(replica), index)
        return None

    async def _pump_async(self, replica: int, job: tuple, stream: ReplicaStream) -> None:
        current: int | None = replica
        while current is not None:
            replica, current, index = current, None, 0
            try:
                async for ref in self._start(replica, job, stream):
                    item = await ref
                    index = item[0].index + 1
                    self._deliver(stream, item)
                if not stream.finished:
                    raise RuntimeError("the replica's stream ended without a last event")
            except Exception as err:  # noqa: BLE001 - whatever the replica died of, the request ends cleanly
                if not stream.finished:
                    current = self._after_failure(replica, err, stream, index)
            finally:
                with self._lock:
                    self.in_flight[replica] -= 1

    def _pump_sync(self, replica: int, job: tuple, stream: ReplicaStream) -> None:
        import ray

        current: int | None = replica
        while current is not None:
            replica, current, index = current, None, 0
            try:
                for ref in self._start(replica, job, stream):
                    item = ray.get(ref)
                    index = item[0].index + 1
                    self._deliver(stream, item)
                if not stream.finished:
                    raise RuntimeError("the replica's stream ended without a last event")
            except Exception as err:  # noqa: BLE001
                if not stream.finished:
                    current = self._after_failure(replica, err, stream, index)
            finally:
                with self._lock:
                    self.in_flight[replica] -= 1

    def replica_pids(self, timeout: float = 600) -> list[int]:
        """Process ids of the replicas (waits until each is loaded)."""
        import ray

        return ray.get([a.ready.remote() for a in self.actors], timeout=timeout)

    def close(self) -> None:
        import ray

        self._closed = True
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.local.close()


def start_replicas(
    lab: Any,
    replicas: int,
    *,
    model: str,
    sae_path: str | None,
    dtype: str | None,
    device: str | None,
    max_batch: int,
    max_queue: int,
    cpus_per_replica: float = 1,
    timeout: float = 600,
) -> ReplicaEngine:
    """Start ``replicas`` engine actors on the connected Ray cluster, wait until each has loaded, and put
    their ``ReplicaEngine`` in place of ``lab.engine``."""
    import ray

    actor_class = ray.remote(num_cpus=cpus_per_replica, max_restarts=REPLICA_RESTARTS, max_task_retries=0)(
        EngineReplica
    )
    actors = [
        actor_class.options(max_concurrency=max(64, max_queue)).remote(
            model, sae_path, dtype, device, max_batch, max_queue
        )
        for _ in range(replicas)
    ]
    engine = ReplicaEngine(lab.engine, actors, max_queue)
    engine.replica_pids(timeout)
    lab.engine = engine
    return engine


def attach_replicas(lab: Any, settings: Any, model: str, sae_path: Any) -> ReplicaEngine | None:
    """``serve``'s hook: with ``settings.replicas`` (``--replicas N``) or ``settings.ray_address`` (``--ray``),
    join the cluster (``local:N`` when only ``--replicas`` is given) and start the replicas; else None."""
    if not settings.replicas and not settings.ray_address:
        return None
    from steerlab.cluster.connect import check_address, connect

    replicas = settings.replicas or 1
    address = settings.ray_address or f"local:{replicas}"
    check_address(address)
    connect(address)
    engine = start_replicas(
        lab,
        replicas,
        model=lab.model_name,
        sae_path=None if sae_path is None else str(sae_path),
        dtype=settings.dtype,
        device=settings.device,
        max_batch=settings.max_batch,
        max_queue=settings.max_queue,
    )
    log.info("%d engine replicas on Ray at %s (pids %s)", replicas, address, engine.replica_pids())
    return engine
