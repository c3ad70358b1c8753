import json

import torch

from steerlab.activations.chat_generation import ChatGenerationConfig, generate_replies

PROMPTS = [
    {"id": i, "source": "test", "prompt": p}
    for i, p in enumerate(
        ["the cat sat", "bonjour le monde", "def add(a, b):", "pirates say arr", "What is the capital"]
    )
]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_transcripts_written_in_chat_shape_and_resume_equals_uninterrupted(tiny_lm, tmp_path):
    cfg = ChatGenerationConfig(batch_size=2, max_new_tokens=8, seed=1)
    whole = tmp_path / "whole.jsonl"
    assert generate_replies(tiny_lm, PROMPTS, whole, cfg, progress=False) == 5
    rows = _rows(whole)
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    for r in rows:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["finish_reason"] in ("stop", "length")

    resumed = tmp_path / "resumed.jsonl"
    generate_replies(tiny_lm, PROMPTS[:4], resumed, cfg, progress=False)  # "killed" after batch 2 of 3
    with resumed.open("a") as f:
        f.write('{"id": 4, "torn')  # a half-written line from the kill
    assert generate_replies(tiny_lm, PROMPTS, resumed, cfg, progress=False) == 1
    assert sorted(_rows(resumed), key=lambda r: r["id"]) == rows


def test_capture_writes_a_harvest_per_batch_without_heldout_and_resumes(tiny_lm, tmp_path):
    import pytest
    from safetensors.torch import load_file

    from steerlab.activations.chat_capture import ChatCapture
    from steerlab.activations.harvest import HarvestError
    from steerlab.activations.shard_source import ShardActivationSource

    cfg = ChatGenerationConfig(batch_size=2, max_new_tokens=6, seed=1)

    def capture(folder, **kw):
        return ChatCapture(
            tiny_lm,
            folder,
            1,
            num_batches=3,
            generation={"batch_size": 2, **kw},
            store_dtype="float32",
            keep_id=lambda i: i != 2,
        )

    whole = tmp_path / "whole"
    generate_replies(tiny_lm, PROMPTS, tmp_path / "whole.jsonl", cfg, progress=False, capture=capture(whole))
    manifest = json.loads((whole / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_shards"] == 3 and manifest["hookpoint"] == "model.layers.1"
    shards = [load_file(str(whole / f"shard_{i:05d}.safetensors")) for i in range(3)]
    assert [sorted(set(s["seq_index"].tolist())) for s in shards] == [[0, 1], [3], [4]]  # id 2 held out
    assert all(int(s["position"].min()) == 1 for s in shards)  # the first token's residual is skipped
    assert manifest["num_tokens"] == sum(len(s["acts"]) for s in shards)
    assert ShardActivationSource(whole).num_tokens == manifest["num_tokens"]
    assert manifest["massive_tokens"] == ShardActivationSource(whole).massive_tokens == 0  # counted, as harvests do
    # the feature-database builder reads it too: example contexts are whole conversations by id
    from steerlab.features.build_sources import HarvestActivations
    from steerlab.models.chat_template import chat_input_ids

    assert manifest["num_sequences"] == 5
    source = HarvestActivations([whole])
    conversations = source.sequence_tokens({0, 2, 4})
    assert conversations[2] == []  # held out
    rows = shards[2]
    assert conversations[4][0] == chat_input_ids(tiny_lm.tokenizer, [{"role": "user", "content": "x"}])[0]
    assert (
        conversations[4][1:] == rows["token_ids"].tolist()
        and conversations[4][:2]
        == chat_input_ids(tiny_lm.tokenizer, [{"role": "user", "content": PROMPTS[4]["prompt"]}])[:2]
    )
    assert sum(batch.acts.shape[0] for batch in source.batches()) == manifest["num_tokens"]

    # transcripts already written but a shard missing: that batch is generated again, nothing is appended
    part = tmp_path / "part"
    jsonl = tmp_path / "part.jsonl"
    generate_replies(tiny_lm, PROMPTS, jsonl, cfg, progress=False, capture=capture(part))
    (part / "shard_00001.safetensors").unlink()
    before = jsonl.read_text()
    assert generate_replies(tiny_lm, PROMPTS, jsonl, cfg, progress=False, capture=capture(part)) == 0
    assert jsonl.read_text() == before
    again = load_file(str(part / "shard_00001.safetensors"))
    for key, value in shards[1].items():
        assert torch.equal(again[key], value)

    with pytest.raises(HarvestError, match="differs in: corpus"):
        capture(whole, max_new_tokens=99)


def test_replies_with_unicode_line_separators_survive_resume_and_split(tmp_path):
    """Replies are written with ensure_ascii=False, so U+2028, U+2029 and U+0085 appear raw: JSON Lines are
    split on "\\n" only (splitlines() tore such a line in two and the split of 8,337 replies failed)."""
    from steerlab.activations.chat_generation import done_ids
    from steerlab.activations.default_recipe import split_chat_heldout

    rows = [
        {
            "id": i,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": f"a\u2028b\u2029c\x85d {i}"},
            ],
        }
        for i in range(3)
    ]
    (tmp_path / "chat.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    assert done_ids(tmp_path / "chat.jsonl") == {0, 1, 2}
    train, held = split_chat_heldout(tmp_path)
    read = lambda p: [json.loads(line) for line in p.read_text(encoding="utf-8").split("\n") if line]  # noqa: E731
    assert read(held) == rows[:1] and read(train) == rows[1:]
