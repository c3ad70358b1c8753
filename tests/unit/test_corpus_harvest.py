import json

import pytest
import torch
from safetensors.torch import load_file

from steerlab.activations.corpus import CorpusError, CorpusSource, CorpusSpec, build_sequences
from steerlab.activations.harvest import HarvestConfig, HarvestError, harvest, shard_path
from steerlab.activations.shard_source import ShardActivationSource
from steerlab.models.hooks import forward_to_hookpoint
from tests.conftest import TINY_TEXT


@pytest.fixture()
def corpus_files(tmp_path):
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"text": " ".join(TINY_TEXT * 3)}) + "\n" for _ in range(12)))
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t[::-1]}]}) + "\n"
            for t in TINY_TEXT
        )
    )
    return text, chat


def _spec(text, chat, **kw):
    return CorpusSpec(sources=[CorpusSource(str(text)), CorpusSource(str(chat))], context_length=48, **kw)


def test_chat_records_use_the_chat_template(tiny_lm, corpus_files):
    text, chat = corpus_files
    seqs = build_sequences(CorpusSpec([CorpusSource(str(chat))], context_length=256), tiny_lm.tokenizer, progress=False)
    start = tiny_lm.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert len(seqs) == len(TINY_TEXT) and all(s[0] == start for s in seqs)


def test_budget_and_parquet(tiny_lm, tmp_path, corpus_files):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": [" ".join(TINY_TEXT * 4)] * 10}), path)
    seqs = build_sequences(
        CorpusSpec([CorpusSource(str(path), max_tokens=100)], context_length=48), tiny_lm.tokenizer, progress=False
    )
    assert 100 <= sum(map(len, seqs)) < 100 + 48


@pytest.mark.parametrize("content,match", [("{not json\n", "not valid JSON"), ('{"x": 1}\n', "needs a string field")])
def test_bad_corpus_records_name_the_problem(tiny_lm, tmp_path, content, match):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(CorpusError, match=match):
        build_sequences(CorpusSpec([CorpusSource(str(bad))]), tiny_lm.tokenizer, progress=False)


def test_missing_corpus_file(tiny_lm, tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        build_sequences(CorpusSpec([CorpusSource(str(tmp_path / "nope.jsonl"))]), tiny_lm.tokenizer, progress=False)


def test_harvest_matches_forward_and_skips_position_zero(tiny_lm, corpus_files, tmp_path):
    text, chat = corpus_files
    cfg = HarvestConfig(layer=2, batch_size=4, sequences_per_shard=8, store_dtype="float32")
    manifest = harvest(tiny_lm, _spec(text, chat), tmp_path / "h", cfg, progress=False)
    assert manifest["complete"]
    shard = load_file(str(shard_path(tmp_path / "h", 0)))
    seq0 = shard["seq_index"] == shard["seq_index"][0]
    ids = torch.cat([torch.tensor([0]), shard["token_ids"][seq0].long()])  # placeholder for position 0
    from steerlab.activations.harvest import load_sequences

    sequences = load_sequences(tmp_path / "h" / "sequences.safetensors")
    true_ids = torch.tensor([sequences[int(shard["seq_index"][0])]])
    assert torch.equal(true_ids[0, 1:], ids[1:])
    expected = forward_to_hookpoint(tiny_lm.model, true_ids, "model.layers.2")[0, 1:]
    torch.testing.assert_close(shard["acts"][seq0], expected, rtol=1e-4, atol=1e-5)
    assert int(shard["position"].min()) == 1


def test_killed_harvest_resumes_to_identical_shards(tiny_lm, corpus_files, tmp_path):
    text, chat = corpus_files
    cfg = HarvestConfig(layer=1, batch_size=3, sequences_per_shard=5, store_dtype="bfloat16")
    full = harvest(tiny_lm, _spec(text, chat), tmp_path / "full", cfg, progress=False)
    part = harvest(tiny_lm, _spec(text, chat), tmp_path / "part", cfg, progress=False, max_shards=1)
    assert not part["complete"]
    # a crash mid-write leaves only a hidden temp file, which is ignored and overwritten
    (tmp_path / "part" / ".shard_00001.safetensors.tmp").write_bytes(b"garbage")
    resumed = harvest(tiny_lm, _spec(text, chat), tmp_path / "part", cfg, progress=False)
    assert resumed["complete"] and resumed["num_shards"] == full["num_shards"] > 1
    for i in range(full["num_shards"]):
        a, b = load_file(str(shard_path(tmp_path / "full", i))), load_file(str(shard_path(tmp_path / "part", i)))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert a["acts"].dtype == torch.bfloat16


def test_harvest_refuses_a_folder_from_another_run(tiny_lm, corpus_files, tmp_path):
    text, chat = corpus_files
    harvest(tiny_lm, _spec(text, chat), tmp_path / "h", HarvestConfig(layer=1, sequences_per_shard=50), progress=False)
    with pytest.raises(HarvestError, match="hookpoint"):
        harvest(
            tiny_lm, _spec(text, chat), tmp_path / "h", HarvestConfig(layer=2, sequences_per_shard=50), progress=False
        )


def test_shard_source_is_deterministic_and_resumable(tiny_lm, corpus_files, tmp_path):
    text, chat = corpus_files
    harvest(
        tiny_lm,
        _spec(text, chat),
        tmp_path / "h",
        HarvestConfig(layer=1, sequences_per_shard=4, store_dtype="float32"),
        progress=False,
    )
    src = ShardActivationSource(tmp_path / "h", shards_in_memory=2)
    batches = list(src.iter_batches(16, seed=3))
    again = list(src.iter_batches(16, seed=3))
    later = list(src.iter_batches(16, start_token=16 * 5, seed=3))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert len(later) == len(batches) - 5 and all(torch.equal(a, b) for a, b in zip(batches[5:], later))
    everything = torch.cat([load_file(str(p))["acts"] for p in sorted((tmp_path / "h").glob("shard_*"))])
    seen = torch.cat(batches)
    assert seen.shape[0] == everything.shape[0] // 16 * 16
    assert not torch.equal(seen, everything[: seen.shape[0]])  # shuffled


def test_two_harvests_stream_as_one_and_must_match(tiny_lm, corpus_files, tmp_path):
    text, chat = corpus_files
    cfg = HarvestConfig(layer=1, sequences_per_shard=4, store_dtype="float32")
    harvest(tiny_lm, CorpusSpec([CorpusSource(str(text))], context_length=48), tmp_path / "a", cfg, progress=False)
    harvest(tiny_lm, CorpusSpec([CorpusSource(str(chat))], context_length=48), tmp_path / "b", cfg, progress=False)
    both = ShardActivationSource([tmp_path / "a", tmp_path / "b"])
    single = [ShardActivationSource(tmp_path / name).num_tokens for name in ("a", "b")]
    assert both.num_tokens == sum(single)
    harvest(
        tiny_lm,
        CorpusSpec([CorpusSource(str(chat))], context_length=48),
        tmp_path / "c",
        HarvestConfig(layer=2, sequences_per_shard=4),
        progress=False,
    )
    with pytest.raises(HarvestError, match="hookpoint"):
        ShardActivationSource([tmp_path / "a", tmp_path / "c"])


def test_hf_datasets_source_reads_a_local_dataset_folder(tiny_lm, tmp_path):
    """The hf: path is the real `datasets.load_dataset` code; hubs are unreachable here, a folder is not."""
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": t * 3}) + "\n" for t in TINY_TEXT))
    seqs = build_sequences(
        CorpusSpec([CorpusSource(f"hf:{folder}")], context_length=32), tiny_lm.tokenizer, progress=False
    )
    assert len(seqs) >= len(TINY_TEXT)


def test_hf_dataset_that_cannot_be_found(tiny_lm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorpusError, match="cannot load HF dataset"):
        build_sequences(CorpusSpec([CorpusSource("hf:nobody/no-such-dataset")]), tiny_lm.tokenizer, progress=False)


def test_harvest_keeps_massive_tokens_and_counts_them(tiny_lm, corpus_files, tmp_path):
    """A second attention sink (1,000x the residual norm past position 0) stays in the shards, so harvests written
    before and after this count read alike, and is counted: in each shard's metadata, in the finished manifest and
    by the shard source. A harvest finished before the count gets it when its command is run again."""
    from safetensors import safe_open

    from steerlab.activations.harvest import load_sequences

    text, chat = corpus_files
    cfg = HarvestConfig(layer=1, batch_size=4, sequences_per_shard=5, store_dtype="float32")
    plain = harvest(tiny_lm, _spec(text, chat), tmp_path / "plain", cfg, progress=False)

    def sink_at_5(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden[:, 5] *= 1000.0

    handle = tiny_lm.model.model.layers[1].register_forward_hook(sink_at_5)
    try:
        sunk = harvest(tiny_lm, _spec(text, chat), tmp_path / "sunk", cfg, progress=False)
    finally:
        handle.remove()
    sequences = load_sequences(tmp_path / "sunk" / "sequences.safetensors")
    expected = sum(len(s) > 5 for s in sequences)
    assert plain["massive_tokens"] == 0 and plain["massive_factor"] == 10.0
    assert sunk["massive_tokens"] == expected > 0 and sunk["num_tokens"] == plain["num_tokens"]
    per_shard = []
    for i in range(sunk["num_shards"]):
        with safe_open(str(shard_path(tmp_path / "sunk", i)), framework="pt") as f:
            per_shard.append(int(f.metadata()["massive_tokens"]))
            assert int((f.get_tensor("position") == 5).sum()) == per_shard[-1]  # raw: every sink is still there
    assert sum(per_shard) == expected
    assert ShardActivationSource([tmp_path / "plain", tmp_path / "sunk"]).massive_tokens == expected
    on_disk = json.loads((tmp_path / "sunk" / "manifest.json").read_text())
    assert on_disk["massive_tokens"] == expected

    # a harvest finished before the count: no key in the manifest, no count in the shards' metadata
    for key in ("massive_tokens", "massive_factor"):
        del on_disk[key]
    (tmp_path / "sunk" / "manifest.json").write_text(json.dumps(on_disk))
    first = shard_path(tmp_path / "sunk", 0)
    from safetensors.torch import save_file

    save_file(load_file(str(first)), str(first), metadata={"hookpoint": "model.layers.1"})
    assert ShardActivationSource(tmp_path / "sunk").massive_tokens is None
    again = harvest(tiny_lm, _spec(text, chat), tmp_path / "sunk", cfg, progress=False)  # nothing left to forward
    assert again["massive_tokens"] == expected
    assert ShardActivationSource(tmp_path / "sunk").massive_tokens == expected
