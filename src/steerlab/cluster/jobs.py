"""Harvest, feature build and labeling split across a Ray cluster (``--ray ADDRESS``).

Work is cut into shards by corpus range and each shard is a Ray task; this process (the driver)
keeps everything that is written:

- **harvest**: shard ``i`` (sequences ``[i*S, (i+1)*S)``) is forwarded on a worker and its tensors come
  back to the driver, which writes ``shard_0000i.safetensors`` atomically (``activations/harvest.py``).
  A rerun computes only the shards missing on disk.
- **feature build**: shard ``k`` is batches ``[k*B, (k+1)*B)`` of the build's fixed batch order,
  encoded by the SAE on a worker; the driver folds the codes into the build state in batch order and
  checkpoints after every shard (``features/build.py``).
- **label**: shard ``k`` is a chunk of features, explained and scored on a worker; the driver writes its
  labels (``features/explain/run.py``).

The driver consumes results in a fixed order whatever order they finish in, so the output is
bit-for-bit the one of a single-machine run. A worker that dies mid-shard returns nothing: Ray runs the
task again (``max_retries``) and the driver writes that shard once. Workers load the model by name
(a local folder must exist at the same path on every node, a hub or bundled name is fetched there);
the SAE travels through Ray's object store, so it needs no shared disk. Harvest folders given to
``features build --acts`` must be readable at the same path on the workers (a shared file system).
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch

from steerlab.activations.harvest import HarvestConfig, harvest_shard
from steerlab.features.batch_codes import BatchCodes, TokenBatch
from steerlab.features.build import encode_batch
from steerlab.features.schema import Feature, Label
from steerlab.models.loader import LoadedModel, load_model

TASK_RETRIES = 3
"""Times Ray reruns a shard whose worker died (a process or node lost, not an exception in our code)."""

BeforeShard = Callable[[int], None]
"""Called on the worker with the shard number before a shard is computed (progress, fault-injection tests)."""

_MODELS: dict[tuple[str, str | None, str | None], LoadedModel] = {}


def worker_model(name: str, dtype: str | None, device: str | None) -> LoadedModel:
    """The model in this worker process, loaded once and kept for the worker's later shards."""
    key = (name, dtype, device)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(name, dtype=dtype, device=device)
    return _MODELS[key]


def in_order(refs: Iterable[Any], window: int) -> Iterator[Any]:
    """``ray.get`` of object refs in the order given, keeping at most ``window`` tasks submitted ahead."""
    import ray

    pending: deque = deque()
    source = iter(refs)
    for ref in itertools.islice(source, window):
        pending.append(ref)
    while pending:
        value = ray.get(pending.popleft())
        nxt = next(source, None)
        if nxt is not None:
            pending.append(nxt)
        yield value


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


# ----------------------------------------------------------------------------------------------------- harvest
def _harvest_task(
    model: str,
    dtype: str | None,
    device: str | None,
    hookpoint: str,
    index: int,
    first: int,
    sequences: list[list[int]],
    cfg: HarvestConfig,
    before_shard: BeforeShard | None,
) -> dict[str, torch.Tensor]:
    if before_shard is not None:
        before_shard(index)
    return harvest_shard(worker_model(model, dtype, device), hookpoint, sequences, first, cfg)


class RayHarvestRunner:
    """``harvest(..., runner=RayHarvestRunner(...))``: every missing shard a Ray task, written as it lands."""

    def __init__(
        self,
        model: str,
        dtype: str | None = None,
        device: str | None = None,
        before_shard: BeforeShard | None = None,
        cpus_per_task: float = 1,
    ):
        self.model, self.dtype, self.device = model, dtype, device
        self.before_shard, self.cpus_per_task = before_shard, cpus_per_task

    def __call__(
        self, hookpoint: str, chunks: dict[int, tuple[int, list[list[int]]]], cfg: HarvestConfig
    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        import ray

        task = ray.remote(num_cpus=self.cpus_per_task, max_retries=TASK_RETRIES)(_harvest_task)
        waiting = {
            task.remote(self.model, self.dtype, self.device, hookpoint, i, first, seqs, cfg, self.before_shard): i
            for i, (first, seqs) in chunks.items()
        }
        while waiting:  # write shards in the order they finish; each file stands alone
            done, _ = ray.wait(list(waiting), num_returns=1)
            for ref in done:
                yield waiting.pop(ref), ray.get(ref)


# ------------------------------------------------------------------------------------------------ feature build
def _source(kind: str, spec: dict) -> Any:
    from steerlab.features.build_sources import CorpusActivations, HarvestActivations

    if kind == "harvest":
        return HarvestActivations(spec["paths"], batch_tokens=spec["batch_tokens"], max_tokens=spec["max_tokens"])
    lm = worker_model(spec["model"], spec["dtype"], spec["device"])
    return CorpusActivations(
        lm,
        spec["hookpoint"],
        spec["sequences"],
        batch_tokens=spec["batch_tokens"],
        max_tokens=spec["max_tokens"],
        description=spec["description"],
    )


def _encode_task(
    sae: Any, kind: str, spec: dict, shard: int, first: int, count: int, before_shard: BeforeShard | None
) -> list[BatchCodes]:
    if before_shard is not None:
        before_shard(shard)
    out = []
    for batch in itertools.islice(_source(kind, spec).batches(skip=first), count):
        codes = encode_batch(sae, batch)
        # the fold never reads the activations again: send back only what it does read
        codes.batch = TokenBatch(torch.empty(0), batch.token_ids, batch.seq, batch.pos)
        out.append(codes)
    return out


class RayBuildEncoder:
    """``build_feature_db(..., encoded=RayBuildEncoder(...))``: batches encoded on Ray, shard by shard.

    ``source`` is the driver's HarvestActivations or CorpusActivations; the workers rebuild the same
    source from its description (harvest paths, or the model name and the sequences)."""

    def __init__(
        self,
        sae: Any,
        source: Any,
        *,
        batches_per_shard: int | None = None,
        dtype: str | None = None,
        device: str | None = None,
        before_shard: BeforeShard | None = None,
        window: int | None = None,
    ):
        import ray

        from steerlab.features.build_sources import HarvestActivations

        self.total = source.num_batches()
        if isinstance(source, HarvestActivations):
            self.kind = "harvest"
            spec: dict = {"paths": source.paths}
        else:
            self.kind = "corpus"
            spec = {
                "model": source.model_name,
                "dtype": dtype,
                "device": device,
                "hookpoint": source.hookpoint,
                "sequences": source.sequences,
                "description": source.description,
            }
        spec.update(batch_tokens=source.batch_tokens, max_tokens=source.max_tokens)
        self.spec_ref = ray.put(spec)  # one copy in the object store, not one per task
        self.sae_ref = ray.put(sae)
        cpus = cluster_cpus()
        self.batches_per_shard = batches_per_shard or min(256, max(1, math.ceil(self.total / (4 * cpus))))
        self.before_shard, self.window = before_shard, window or 2 * cpus

    def __call__(self, skip: int) -> Iterator[BatchCodes]:
        import ray

        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_encode_task)
        per, total = self.batches_per_shard, self.total
        refs = (
            task.remote(self.sae_ref, self.kind, self.spec_ref, n, first, min(per, total - first), self.before_shard)
            for n, first in enumerate(range(skip, total, per))
        )
        for shard in in_order(refs, self.window):
            yield from shard


# -------------------------------------------------------------------------------------------------------- label
def _label_task(
    key: str,
    backends: Callable[[], tuple[Any, Any]],
    features: list[Feature],
    existing: dict[int, Label] | None,
    shard: int,
    before_shard: BeforeShard | None,
) -> Sequence[Label | None]:
    from steerlab.features.explain.run import label_chunk

    if before_shard is not None:
        before_shard(shard)
    explainer, scorer = _worker_backends(key, backends)
    return label_chunk(features, explainer, scorer, existing)


_BACKENDS: dict[str, tuple[Any, Any]] = {}


def _worker_backends(key: str, make: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    if key not in _BACKENDS:
        _BACKENDS.clear()
        _BACKENDS[key] = make()
    return _BACKENDS[key]


class RayLabeler:
    """``label_features(..., labeler=RayLabeler(make_backends))``: chunks of features labeled on Ray.

    ``make_backends()`` builds ``(explainer, scorer)``; it is shipped to the workers and called once in
    each (the explainer's models load there). ``existing`` labels are set for ``--rescore``."""

    def __init__(
        self,
        make_backends: Callable[[], tuple[Any, Any]],
        existing: dict[int, Label] | None = None,
        before_shard: BeforeShard | None = None,
        window: int | None = None,
    ):
        self.make_backends, self.existing, self.before_shard = make_backends, existing, before_shard
        self.window = window or 2 * cluster_cpus()

    def __call__(self, chunks: Iterator[list[Feature]]) -> Iterator[tuple[list[Feature], Sequence[Label | None]]]:
        import ray

        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_label_task)
        make, key = ray.put(self.make_backends), uuid.uuid4().hex
        pending: deque = deque()
        numbered = enumerate(chunks)

        def submit() -> bool:
            item = next(numbered, None)
            if item is None:
                return False
            n, features = item
            existing = None if self.existing is None else {f.index: self.existing[f.index] for f in features}
            pending.append((features, task.remote(key, make, features, existing, n, self.before_shard)))
            return True

        while len(pending) < self.window and submit():
            pass
        while pending:
            features, ref = pending.popleft()
            labels = ray.get(ref)
            submit()
            yield features, labels
