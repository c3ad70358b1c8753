import json

from steerlab.activations.chat_generation import ChatGenerationConfig, generate_replies

PROMPTS = [{"id": i, "source": "test", "prompt": p} for i, p in
           enumerate(["the cat sat", "bonjour le monde", "def add(a, b):", "pirates say arr", "What is the capital"])]


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
