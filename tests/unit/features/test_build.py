"""Building the feature database on the tiny model with a hand-made feature that fires only on " mat"."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from steerlab.activations.corpus import CorpusSource, CorpusSpec, build_sequences
from steerlab.activations.harvest import HarvestConfig, harvest
from steerlab.features.batch_codes import BatchCodes, TokenBatch
from steerlab.features.build import build_feature_db
from steerlab.features.build_sources import CorpusActivations, HarvestActivations, sequence_cuts
from steerlab.features.cofiring import CofiringCounter
from steerlab.features.identity import sae_identity
from steerlab.features.logit_effects import unembedding, vocabulary
from steerlab.features.schema import Label, feature_uuid
from steerlab.features.store import FeatureStore
from steerlab.models.hooks import forward_to_hookpoint
from tests.unit.features.conftest import CRAFTED, D_SAE, HOOKPOINT, corpus_sequences, make_crafted_sae, token_id


def run_build(lm, sae, db_path, cfg, source=None, **kwargs):
    source = source or CorpusActivations(lm, HOOKPOINT, corpus_sequences(lm.tokenizer), batch_tokens=cfg.batch_tokens)
    w_u, norm = unembedding(lm.model)
    with FeatureStore(db_path) as store:
        return build_feature_db(
            sae,
            source,
            store,
            unembedding=(w_u, norm),
            vocab=vocabulary(lm.tokenizer, len(w_u)),
            work_dir=db_path.with_name(db_path.name + ".build"),
            cfg=cfg,
            progress=False,
            **kwargs,
        )


def crafted_truth(lm, sae):
    """Activations of the crafted feature on every scanned token, one sequence at a time."""
    acts, is_target = [], []
    target = token_id(lm.tokenizer, " mat")
    for seq in corpus_sequences(lm.tokenizer):
        hidden = forward_to_hookpoint(lm.model, torch.tensor([seq]), HOOKPOINT)[0, 1:]
        acts.append(sae.encode(hidden)[:, CRAFTED])
        is_target.append(torch.tensor(seq[1:]) == target)
    return torch.cat(acts), torch.cat(is_target)


def test_crafted_feature_stats_and_examples(tiny_lm, crafted_sae, small_build_config, tmp_path):
    result = run_build(tiny_lm, crafted_sae, tmp_path / "f.db", small_build_config)
    acts, is_target = crafted_truth(tiny_lm, crafted_sae)
    assert bool((acts[~is_target] == 0).all()) and bool((acts[is_target] > 0).all())
    with FeatureStore(tmp_path / "f.db", readonly=True) as store:
        feature = store.get_feature(result.sae_id, CRAFTED)
        assert store.count_features(result.sae_id) == D_SAE
    stats = feature.stats
    assert result.tokens == stats.tokens_scanned == len(acts)
    assert stats.density == pytest.approx(int(is_target.sum()) / len(acts))
    assert stats.max_act == pytest.approx(float(acts.max()), rel=1e-4)
    assert stats.mean_act == pytest.approx(float(acts[is_target].mean()), rel=1e-4)
    assert sum(stats.histogram.counts) == int(is_target.sum())
    qs = list(stats.quantiles.values())
    assert qs == sorted(qs) and float(acts[is_target].min()) - 0.3 <= qs[0] and qs[-1] <= stats.max_act
    target = token_id(tiny_lm.tokenizer, " mat")
    sequences = corpus_sequences(tiny_lm.tokenizer)
    top = feature.examples_of("top")
    assert len(top) == small_build_config.top_examples
    assert len({e.sequence_id for e in top}) == len(top)  # distinct texts
    assert [e.max_act for e in top] == sorted((e.max_act for e in top), reverse=True)
    assert top[0].max_act == pytest.approx(stats.max_act)
    for e in top + feature.examples_of("quantile"):
        assert e.token_ids[e.max_position] == target and e.tokens[e.max_position] == " mat"
        assert all((a > 0) == (t == target) for a, t in zip(e.acts, e.token_ids))
        assert len(e.token_ids) <= small_build_config.window
        seq = sequences[e.sequence_id]
        assert any(seq[i : i + len(e.token_ids)] == e.token_ids for i in range(len(seq)))  # a real slice
    quantile = feature.examples_of("quantile")
    assert quantile and [e.quantile for e in quantile] == sorted(e.quantile for e in quantile)
    silent = feature.examples_of("nonactivating")
    assert len(silent) == small_build_config.nonactivating
    assert all(target not in e.token_ids and e.max_act == 0 for e in silent)


def test_logit_effects_of_the_crafted_decoder_row(tiny_lm, crafted_sae, small_build_config, tmp_path):
    result = run_build(tiny_lm, crafted_sae, tmp_path / "f.db", small_build_config)
    with FeatureStore(tmp_path / "f.db") as store:
        feature = store.get_feature(result.sae_id, CRAFTED, with_examples=False)
        decoder = store.load_vectors(result.sae_id, "decoder")
    assert feature.promoted[0].token == " mat" and feature.suppressed[0].token == " the"
    assert len(feature.promoted) == small_build_config.logit_top
    w_u = tiny_lm.model.get_output_embeddings().weight
    norm = tiny_lm.model.model.norm.weight
    expected = (crafted_sae.W_dec[CRAFTED] * norm) @ w_u.T
    assert feature.promoted[0].value == pytest.approx(float(expected.max()), abs=1e-5)
    assert torch.allclose(decoder.float(), crafted_sae.W_dec, atol=1e-3)


def test_uuids_are_stable_and_labels_survive_a_rebuild(tiny_lm, small_build_config, tmp_path):
    sae = make_crafted_sae(tiny_lm)
    first = run_build(tiny_lm, sae, tmp_path / "f.db", small_build_config)
    with FeatureStore(tmp_path / "f.db") as store:
        store.set_label(first.sae_id, CRAFTED, Label(text="the word mat", explainer="test"))
        uuids = [f.uuid for f in store.iter_features(first.sae_id, with_examples=False)]
    again = make_crafted_sae(tiny_lm)  # the same weights, loaded afresh
    bigger = dataclasses.replace(small_build_config, top_examples=6)
    second = run_build(tiny_lm, again, tmp_path / "f.db", bigger)
    assert second.sae_id == first.sae_id == sae_identity(again)
    with FeatureStore(tmp_path / "f.db") as store:
        assert [f.uuid for f in store.iter_features(second.sae_id, with_examples=False)] == uuids
        assert uuids[CRAFTED] == feature_uuid(first.sae_id, CRAFTED)
        feature = store.get_feature(second.sae_id, CRAFTED)
        assert feature.label.text == "the word mat" and len(feature.examples_of("top")) == 6
    other = make_crafted_sae(tiny_lm, seed=1)  # other weights: another SAE, other UUIDs
    assert sae_identity(other) != first.sae_id


def test_resume_after_interruption_equals_an_uninterrupted_build(tiny_lm, crafted_sae, small_build_config, tmp_path):
    run_build(tiny_lm, crafted_sae, tmp_path / "whole.db", small_build_config)
    calls = []

    def crash(acc):
        calls.append(acc.batches_done)
        if acc.batches_done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_build(tiny_lm, crafted_sae, tmp_path / "parts.db", small_build_config, on_batch=crash)
    assert (tmp_path / "parts.db.build" / "state.safetensors").is_file()
    resumed = run_build(tiny_lm, crafted_sae, tmp_path / "parts.db", small_build_config)
    assert 0 < resumed.resumed_from_tokens < resumed.tokens
    assert not (tmp_path / "parts.db.build").exists()
    with FeatureStore(tmp_path / "whole.db") as whole, FeatureStore(tmp_path / "parts.db") as parts:
        assert list(parts.iter_features(resumed.sae_id)) == list(whole.iter_features(resumed.sae_id))


def test_a_checkpoint_of_another_build_is_refused(tiny_lm, crafted_sae, small_build_config, tmp_path):
    def crash(acc):
        if acc.batches_done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_build(tiny_lm, crafted_sae, tmp_path / "f.db", small_build_config, on_batch=crash)
    other = dataclasses.replace(small_build_config, window=12)
    with pytest.raises(ValueError, match="different build.*config.*--no-resume"):
        run_build(tiny_lm, crafted_sae, tmp_path / "f.db", other)
    assert run_build(tiny_lm, crafted_sae, tmp_path / "f.db", other, resume=False).resumed_from_tokens == 0


def test_harvest_input_gives_the_same_feature(tiny_lm, crafted_sae, small_build_config, tmp_path, corpus_file):
    spec = CorpusSpec(sources=[CorpusSource(path=str(corpus_file))], context_length=64)
    harvest(
        tiny_lm,
        spec,
        tmp_path / "acts",
        HarvestConfig(layer=1, sequences_per_shard=8, batch_size=4, store_dtype="float32"),
        progress=False,
    )
    source = HarvestActivations([tmp_path / "acts"], batch_tokens=small_build_config.batch_tokens)
    sequences = build_sequences(spec, tiny_lm.tokenizer, progress=False)  # what the harvest recorded
    assert source.total_tokens == sum(len(s) - 1 for s in sequences)
    from_harvest = run_build(tiny_lm, crafted_sae, tmp_path / "h.db", small_build_config, source=source)
    same_text = CorpusActivations(tiny_lm, HOOKPOINT, sequences, batch_tokens=small_build_config.batch_tokens)
    from_corpus = run_build(tiny_lm, crafted_sae, tmp_path / "c.db", small_build_config, source=same_text)
    with FeatureStore(tmp_path / "h.db") as h, FeatureStore(tmp_path / "c.db") as c:
        fh, fc = h.get_feature(from_harvest.sae_id, CRAFTED), c.get_feature(from_corpus.sae_id, CRAFTED)
    assert fh.stats.density == fc.stats.density and fh.stats.max_act == pytest.approx(fc.stats.max_act, rel=1e-4)
    assert [e.sequence_id for e in fh.examples_of("top")] == [e.sequence_id for e in fc.examples_of("top")]
    assert all(e.tokens[e.max_position] == " mat" for e in fh.examples_of("top"))
    one_shard = HarvestActivations([tmp_path / "acts" / "shard_00001.safetensors"], batch_tokens=96)
    assert {int(b.seq.min()) for b in one_shard.batches()} >= {8}  # only that shard's sequences


def test_bad_inputs(tiny_lm, crafted_sae, small_build_config, tmp_path, monkeypatch):
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.variants.topk import TopKSAE

    narrow = TopKSAE(SAEConfig(d_in=32, d_sae=8, k=2, hookpoint=HOOKPOINT)).eval()
    with pytest.raises(ValueError, match="d_in mismatch.*d_in=32.*d_model=64"):
        run_build(tiny_lm, narrow, tmp_path / "f.db", small_build_config)
    elsewhere = make_crafted_sae(tiny_lm)
    elsewhere.cfg.hookpoint = "model.layers.2"
    source = CorpusActivations(tiny_lm, HOOKPOINT, corpus_sequences(tiny_lm.tokenizer))
    source.hookpoint = HOOKPOINT
    with pytest.raises(ValueError, match="hookpoint mismatch"):
        run_build(tiny_lm, elsewhere, tmp_path / "f.db", small_build_config, source=source)

    # a build that fails while writing leaves the stored database as it was
    result = run_build(tiny_lm, crafted_sae, tmp_path / "f.db", small_build_config)
    with FeatureStore(tmp_path / "f.db") as store:
        store.set_label(result.sae_id, CRAFTED, Label(text="mat", explainer="t"))
        before = list(store.iter_features(result.sae_id))
    import steerlab.features.build as build_module

    def broken(acc, sae_id, start, stop, *args):
        if start > 0:
            raise RuntimeError("disk full")
        return real(acc, sae_id, start, stop, *args)

    real = build_module.feature_records
    monkeypatch.setattr(build_module, "WRITE_CHUNK", 8)
    monkeypatch.setattr(build_module, "feature_records", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_build(tiny_lm, crafted_sae, tmp_path / "f.db", dataclasses.replace(small_build_config, top_examples=2))
    with FeatureStore(tmp_path / "f.db") as store:
        assert list(store.iter_features(result.sae_id)) == before


def test_cofiring_of_a_twin_feature_is_exact_when_fully_sampled(tiny_lm, small_build_config, tmp_path):
    sae = make_crafted_sae(tiny_lm)
    twin = CRAFTED + 1
    with torch.no_grad():
        sae.W_enc[:, twin] = sae.W_enc[:, CRAFTED] * 0.5
        sae.b_enc[twin] = sae.b_enc[CRAFTED] * 0.5
    cfg = dataclasses.replace(small_build_config, sample_size=64, cofiring_sample=64)  # > its firings: exact
    result = run_build(tiny_lm, sae, tmp_path / "f.db", cfg)
    with FeatureStore(tmp_path / "f.db") as store:
        crafted = store.get_feature(result.sae_id, CRAFTED, with_examples=False)
    assert crafted.cofiring[0] == (twin, 1.0)
    assert all(0 < share <= 1 for _, share in crafted.cofiring)


def test_cofiring_estimate_from_a_small_sample(tiny_lm):
    """Feature 0 fires on every token, feature 1 on every other one: a 16-token sample per feature still
    estimates the 50% share (Horvitz-Thompson weights undo the sample's bias toward early tokens)."""
    from steerlab.features.examples_slots import SlotTable

    d_sae, n_batches, per_batch = 4, 40, 64
    sample, counter = SlotTable(d_sae, 16, 4, 1), CofiringCounter(d_sae, slots=4)
    fired = torch.zeros(d_sae, dtype=torch.int64)
    for b in range(n_batches):
        rows = torch.arange(per_batch).repeat_interleave(2)
        cols = torch.tensor([0, 1, 0, 2] * (per_batch // 2))
        batch = TokenBatch(
            acts=torch.zeros(per_batch, 1),
            token_ids=torch.zeros(per_batch, dtype=torch.long),
            seq=torch.full((per_batch,), b),
            pos=torch.arange(per_batch),
        )
        codes = BatchCodes(batch, torch.ones(len(rows)), rows, cols, d_sae)
        fired += torch.bincount(codes.cols, minlength=d_sae)
        from steerlab.features.batch_codes import uniform_priority

        owners, at, _ = sample.offer(
            codes,
            torch.arange(len(rows)),
            uniform_priority(codes.seq_of_row[codes.rows], codes.batch.pos[codes.rows], codes.cols),
            one_per_sequence=False,
        )
        counter.update(codes, owners, at, fired, 16)
    shares = dict(counter.top(0))
    assert shares[1] == pytest.approx(0.5, abs=0.2) and shares[2] == pytest.approx(0.5, abs=0.2)
    assert dict(counter.top(1)) == {0: 1.0}


def test_sequence_cuts_never_split_a_sequence():
    seq = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    assert sequence_cuts(seq, 4) == [(0, 5), (5, 10)]
    assert sequence_cuts(seq, 1) == [(0, 3), (3, 5), (5, 6), (6, 10)]
    assert sequence_cuts(torch.tensor([], dtype=torch.long), 4) == []


def test_massive_tokens_are_no_feature_s_example(tiny_lm, small_build_config, tmp_path):
    """A second attention sink (1,000x the residual norm at position 5 of every text): with the SAE firing k latents
    on every token, it would be the strongest example of each latent it touches. It fires none; it stays in the
    windows as context, with activation 0."""
    sae = make_crafted_sae(tiny_lm)

    def sink_at_5(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden[:, 5] *= 1000.0

    handle = tiny_lm.model.model.layers[1].register_forward_hook(sink_at_5)
    try:
        result = run_build(tiny_lm, sae, tmp_path / "f.db", small_build_config)
    finally:
        handle.remove()
    at_sink, examples = 0, 0
    with FeatureStore(tmp_path / "f.db", readonly=True) as store:
        for index in range(D_SAE):
            for e in store.get_feature(result.sae_id, index).examples:
                examples += 1
                if e.start is not None and e.start <= 5 < e.start + len(e.acts):
                    assert e.acts[5 - e.start] == 0.0, (index, e)
                    at_sink += 1
    assert examples > 100 and at_sink > 10  # sinks were in plenty of windows, never with an activation
