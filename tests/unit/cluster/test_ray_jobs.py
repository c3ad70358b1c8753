"""Harvest, feature build and labeling on a local Ray cluster (2 worker CPUs, started once for the module):
the output is bit-for-bit the single-machine one, a worker killed mid-shard costs a rerun of that shard
and nothing more, and a Ray address that does not answer is a one-line error within seconds."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from steerlab.activations.corpus import CorpusSource, CorpusSpec
from steerlab.activations.harvest import HarvestConfig, harvest, shard_path
from steerlab.cluster.jobs import RayBuildEncoder, RayHarvestRunner, RayLabeler
from steerlab.features.build_sources import CorpusActivations, HarvestActivations
from steerlab.features.explain.base import Explainer
from steerlab.features.explain.run import label_features
from steerlab.features.schema import Label
from steerlab.features.store import FeatureStore
from steerlab.models.loader import load_model
from tests.conftest import TINY_TEXT
from tests.unit.features.conftest import HOOKPOINT, corpus_sequences, make_crafted_sae
from tests.unit.features.test_build import run_build

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A private Ray cluster with 2 worker CPUs; its GCS address lets a CLI subprocess join it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="float32", device="cpu")


@pytest.fixture()
def spec(tmp_path):
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"text": " ".join(TINY_TEXT * 3)}) + "\n" for _ in range(12)))
    return CorpusSpec(sources=[CorpusSource(str(text))], context_length=48)


def attempt_log(path: Path, kill_shard: int | None = None):
    """A ``before_shard`` hook that records ``shard pid`` per attempt; with ``kill_shard``, the first attempt
    at that shard SIGKILLs its own worker process (a node lost mid-shard). Nested, so Ray ships it by value."""

    def before_shard(shard: int) -> None:
        import os
        import signal

        with open(path, "a") as fh:
            fh.write(f"{shard} {os.getpid()}\n")
        if shard == kill_shard and not os.path.exists(f"{path}.killed"):
            open(f"{path}.killed", "w").close()
            os.kill(os.getpid(), signal.SIGKILL)

    return before_shard


def attempts(path: Path) -> list[int]:
    return sorted(int(line.split()[0]) for line in path.read_text().splitlines())


def same_shards(a: Path, b: Path, count: int) -> None:
    for i in range(count):
        x, y = load_file(str(shard_path(a, i))), load_file(str(shard_path(b, i)))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f"shard {i} differs"


CFG = HarvestConfig(layer=1, batch_size=3, sequences_per_shard=4, store_dtype="float32")


def test_ray_harvest_is_bit_identical_and_redoes_a_killed_shard_once(cluster, lm, spec, tmp_path):
    single = harvest(lm, spec, tmp_path / "one", CFG, progress=False)
    assert single["num_shards"] >= 4
    log = tmp_path / "attempts.log"
    runner = RayHarvestRunner(lm.name, "float32", "cpu", before_shard=attempt_log(log, kill_shard=1))
    on_ray = harvest(lm, spec, tmp_path / "ray", CFG, progress=False, runner=runner)
    assert on_ray == single
    same_shards(tmp_path / "one", tmp_path / "ray", single["num_shards"])
    # shard 1 ran twice (its first worker died before returning), every other shard once; one file each
    assert attempts(log) == sorted([*range(single["num_shards"]), 1])
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_ray_harvest_resumes_per_shard(cluster, lm, spec, tmp_path):
    log = tmp_path / "attempts.log"
    runner = RayHarvestRunner(lm.name, "float32", "cpu", before_shard=attempt_log(log))
    part = harvest(lm, spec, tmp_path / "h", CFG, progress=False, runner=runner, max_shards=2)
    assert not part["complete"] and attempts(log) == [0, 1]
    log.unlink()
    done = harvest(lm, spec, tmp_path / "h", CFG, progress=False, runner=runner)
    assert done["complete"] and attempts(log) == list(range(2, done["num_shards"]))  # only the missing ones
    single = harvest(lm, spec, tmp_path / "one", CFG, progress=False)
    same_shards(tmp_path / "one", tmp_path / "h", single["num_shards"])


@pytest.fixture()
def crafted(lm, small_build_config):
    return make_crafted_sae(lm, model_name=lm.name), small_build_config


def test_ray_feature_build_equals_single_machine_with_a_worker_killed(cluster, lm, crafted, tmp_path):
    sae, cfg = crafted
    whole = run_build(lm, sae, tmp_path / "one.db", cfg)
    source = CorpusActivations(lm, HOOKPOINT, corpus_sequences(lm.tokenizer), batch_tokens=cfg.batch_tokens)
    log = tmp_path / "attempts.log"
    encoder = RayBuildEncoder(sae, source, batches_per_shard=2, before_shard=attempt_log(log, kill_shard=1))
    assert encoder.total >= 6
    on_ray = run_build(lm, sae, tmp_path / "ray.db", cfg, source=source, encoded=encoder)
    assert on_ray.tokens == whole.tokens
    shards = -(-encoder.total // 2)
    assert attempts(log) == sorted([*range(shards), 1])
    with FeatureStore(tmp_path / "one.db") as a, FeatureStore(tmp_path / "ray.db") as b:
        assert list(b.iter_features(on_ray.sae_id)) == list(a.iter_features(whole.sae_id))


def test_ray_feature_build_from_a_harvest_resumes_from_its_checkpoint(cluster, lm, crafted, tmp_path, corpus_file):
    sae, cfg = crafted
    spec = CorpusSpec(sources=[CorpusSource(path=str(corpus_file))], context_length=64)
    harvest(lm, spec, tmp_path / "acts", HarvestConfig(layer=1, sequences_per_shard=8, store_dtype="float32"))
    source = HarvestActivations([tmp_path / "acts"], batch_tokens=cfg.batch_tokens)
    whole = run_build(lm, sae, tmp_path / "one.db", cfg, source=source)

    def stop(acc):
        if acc.batches_done == 4:
            raise KeyboardInterrupt

    encoder = RayBuildEncoder(sae, source, batches_per_shard=2)
    with pytest.raises(KeyboardInterrupt):
        run_build(lm, sae, tmp_path / "ray.db", cfg, source=source, encoded=encoder, on_batch=stop)
    resumed = run_build(lm, sae, tmp_path / "ray.db", cfg, source=source, encoded=RayBuildEncoder(sae, source))
    assert 0 < resumed.resumed_from_tokens < resumed.tokens == whole.tokens
    with FeatureStore(tmp_path / "one.db") as a, FeatureStore(tmp_path / "ray.db") as b:
        assert list(b.iter_features(resumed.sae_id)) == list(a.iter_features(whole.sae_id))


class TopTokenExplainer(Explainer):
    """Deterministic and cheap: the most frequent max-activating token, with its count as the score."""

    def explain(self, features):
        out = []
        for f in features:
            tokens = [e.tokens[e.max_position] for e in f.examples_of("top")]
            top = max(sorted(set(tokens)), key=tokens.count) if tokens else None
            out.append(Label(text=f"token {top!r}", explainer="test") if top else None)
        return out


def top_token_backends():
    return TopTokenExplainer(), None


def test_ray_labeling_writes_the_single_machine_labels(cluster, lm, crafted, tmp_path):
    sae, cfg = crafted
    built = run_build(lm, sae, tmp_path / "one.db", cfg)
    (tmp_path / "ray.db").write_bytes((tmp_path / "one.db").read_bytes())
    with FeatureStore(tmp_path / "one.db") as store:
        here = label_features(store, built.sae_id, TopTokenExplainer(), batch_size=5, progress=False)
        expected = store.labels(built.sae_id)
    log = tmp_path / "attempts.log"
    labeler = RayLabeler(top_token_backends, before_shard=attempt_log(log, kill_shard=2))
    with FeatureStore(tmp_path / "ray.db") as store:
        on_ray = label_features(store, built.sae_id, None, batch_size=5, progress=False, labeler=labeler)
        got = store.labels(built.sae_id)
    assert here.labeled == on_ray.labeled > 0 and got.keys() == expected.keys()
    assert {i: lab.text for i, lab in got.items()} == {i: lab.text for i, lab in expected.items()}
    assert attempts(log) == sorted([*range(-(-sae.cfg.d_sae // 5)), 2])


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steerlab.cli", *args], capture_output=True, text=True, timeout=timeout, env=os.environ
    )


def test_cli_harvest_joins_a_running_cluster(cluster, tiny_model_dir, spec, tmp_path):
    corpus = spec.sources[0].path
    common = ["harvest", "--corpus", corpus, "--layer", "1", "--context-length", "48", "--model", str(tiny_model_dir)]
    common += ["--sequences-per-shard", "4", "--store-dtype", "float32"]
    alone = _cli(*common, "--out", str(tmp_path / "one"))
    assert alone.returncode == 0, alone.stderr
    joined = _cli(*common, "--out", str(tmp_path / "ray"), "--ray", cluster)
    assert joined.returncode == 0, joined.stderr
    assert json.loads(joined.stdout.splitlines()[-1]) == json.loads(alone.stdout.splitlines()[-1])
    same_shards(tmp_path / "one", tmp_path / "ray", json.loads(alone.stdout.splitlines()[-1])["num_shards"])
    assert ray.is_initialized()  # the CLI left the cluster; it did not stop it


@pytest.mark.parametrize("address", ["127.0.0.1:9", "localhost:notaport", "local:0"])
def test_an_address_that_does_not_answer_is_one_line_within_seconds(address, tmp_path):
    started = time.perf_counter()
    res = _cli("harvest", "--corpus", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "h"), "--ray", address)
    assert time.perf_counter() - started < 30  # the interpreter's start-up included; Ray alone retries ~60 s
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ray" in lines[0], res.stderr
    assert not (tmp_path / "h").exists()


def test_cli_features_build_on_the_cluster_equals_the_local_one(cluster, lm, tiny_model_dir, tmp_path):
    from tests.unit.features.conftest import corpus_texts

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus_texts()))
    make_crafted_sae(lm, model_name=str(tiny_model_dir)).save(tmp_path / "sae")
    common = ["features", "build", "--sae", str(tmp_path / "sae"), "--text-file", str(corpus)]
    common += ["--context-length", "64", "--batch-tokens", "128"]
    alone = _cli(*common, "--db", str(tmp_path / "one.db"))
    assert alone.returncode == 0, alone.stderr
    joined = _cli(*common, "--db", str(tmp_path / "ray.db"), "--ray", cluster)
    assert joined.returncode == 0, joined.stderr
    sae_id = json.loads(alone.stdout.splitlines()[-1])["sae_id"]
    with FeatureStore(tmp_path / "one.db") as a, FeatureStore(tmp_path / "ray.db") as b:
        assert list(b.iter_features(sae_id)) == list(a.iter_features(sae_id))


def test_a_local_cluster_started_by_the_cli_prints_no_warning(tiny_model_dir, spec, tmp_path):
    """Ray 2.60 warns on every new local cluster that it turned token authentication on, unless the mode
    was chosen: `--ray local` chooses it, so a clean run's stderr holds only the progress output."""
    corpus = spec.sources[0].path
    res = _cli(
        *["harvest", "--corpus", corpus, "--layer", "1", "--context-length", "48", "--model", str(tiny_model_dir)],
        *["--sequences-per-shard", "4", "--out", str(tmp_path / "h"), "--ray", "local:1"],
    )
    assert res.returncode == 0, res.stderr
    assert "WARNING" not in res.stderr and "Token authentication" not in res.stderr, res.stderr
