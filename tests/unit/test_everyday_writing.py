"""The recipe's everyday-writing part: prompts over WordNet's topics, replies kept as plain documents."""

import json
from dataclasses import replace

import pytest

from steerlab.activations.corpus import build_sequences
from steerlab.activations.default_recipe import (
    HELDOUT_EVERY,
    WRITING_GENERATION,
    build_everyday_writing,
    default_corpus_spec,
)
from steerlab.activations.everyday_writing import (
    REGISTERS,
    TOPICAL_LEXFILES,
    WORDNET_NOUNS,
    everyday_writing_prompts,
    writing_documents,
    writing_topics,
)
from steerlab.errors import InvalidInputError


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_prompts_are_seeded_and_a_longer_list_starts_with_the_shorter_one():
    short, long = everyday_writing_prompts(40), everyday_writing_prompts(400)
    assert long[:40] == short == everyday_writing_prompts(40)
    assert [p["id"] for p in long] == list(range(400))
    assert everyday_writing_prompts(40, seed=1) != short
    topics = set(writing_topics())
    for p in long:
        register = next(r for r in REGISTERS if p["prompt"].startswith(r.split("{}")[0]))
        topic = p["prompt"][len(register.split("{}")[0]) : len(p["prompt"]) - len(register.split("{}")[1])]
        assert topic in topics, p
    assert len({p["prompt"] for p in long}) > 380  # many topics x registers: few repeats


def test_topics_are_common_nouns_of_the_topical_files_only():
    rows = {}
    for line in WORDNET_NOUNS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            text, tagged, lexfile, _ = line.split("\t")
            rows[text] = (int(tagged), lexfile)
    topics = writing_topics()
    assert len(topics) > 1000
    assert all(rows[t][0] >= 1 and rows[t][1] in TOPICAL_LEXFILES for t in topics)
    assert {"dog", "weather", "music", "kitchen"} <= set(topics)
    assert not any(t[0].isdigit() for t in topics)
    # relations, shapes, quantities and people are not topics even when common
    left_out = [t for t, (n, lexfile) in rows.items() if n >= 1 and lexfile in ("person", "quantity", "shape")]
    assert left_out and not set(left_out) & set(topics)


def test_documents_are_the_replies_alone_and_short_ones_are_dropped():
    long_reply = "Dear Sam,\n\nThe market opened early today. " * 8

    def transcript(i, reply):
        return {"id": i, "messages": [{"role": "user", "content": "Write"}, {"role": "assistant", "content": reply}]}

    transcripts = [transcript(1, long_reply), transcript(2, "No.")]
    docs = writing_documents(transcripts)
    assert docs == [{"id": 1, "source": "everyday-writing", "text": long_reply.strip()}]


def test_build_writes_transcripts_then_plain_train_and_heldout_documents_and_grows(tiny_lm, tmp_path, monkeypatch):
    monkeypatch.setattr("steerlab.activations.everyday_writing.MIN_CHARS", 1)  # the tiny model's replies are short
    cfg = replace(WRITING_GENERATION, batch_size=25, max_new_tokens=96)
    n = 2 * HELDOUT_EVERY
    path = build_everyday_writing(tiny_lm, tmp_path, limit=n // 2, cfg=cfg)
    first = _rows(path)
    assert [r["id"] for r in first] == list(range(n // 2))
    build_everyday_writing(tiny_lm, tmp_path, limit=n, cfg=cfg)  # a larger corpus only adds batches
    rows = {r["id"]: r for r in _rows(path)}
    assert sorted(rows) == list(range(n)) and all(rows[r["id"]] == r for r in first)

    train, held = _rows(tmp_path / "writing_train.jsonl"), _rows(tmp_path / "heldout" / "writing.jsonl")
    assert train and held and len(train) + len(held) <= n
    assert all(d["id"] % HELDOUT_EVERY for d in train) and all(d["id"] % HELDOUT_EVERY == 0 for d in held)
    for d in train + held:
        assert d["text"] == rows[d["id"]]["messages"][-1]["content"].strip()  # the reply, not the request

    spec = default_corpus_spec("writing", tmp_path, context_length=32)
    seqs = build_sequences(spec, tiny_lm.tokenizer, progress=False)
    template = set(tiny_lm.tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]))
    assert seqs and not any(set(s) & template for s in seqs)  # harvested as plain text


@pytest.mark.parametrize("limit", [0, -5, 2.5, True])
def test_a_limit_that_is_not_a_positive_count_is_refused_before_any_model_work(limit, tmp_path):
    from steerlab.activations.default_recipe import build_chat_transcripts

    for build in (build_everyday_writing, build_chat_transcripts):
        with pytest.raises(InvalidInputError, match="limit"):
            build(None, tmp_path, limit=limit)  # no model needed to refuse
    assert not list(tmp_path.iterdir())


def test_cli_refuses_limit_zero_in_one_line(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from steerlab.cli import app

    args = ["corpus", "build-default", "--no-text", "--no-chat", "--limit", "0", "--out", str(tmp_path / "c")]
    res = CliRunner().invoke(app, [*args, "--model", str(tiny_model_dir)])
    assert res.exit_code == 2 and "--limit" in res.output and not (tmp_path / "c").exists()


def test_unknown_part_names_the_parts():
    with pytest.raises(InvalidInputError, match="writing"):
        default_corpus_spec("poems")


def test_cli_writes_the_part_alone_and_harvests_it(tiny_model_dir, tmp_path, steerlab_home, monkeypatch):
    from typer.testing import CliRunner

    from steerlab.cli import app

    monkeypatch.setattr("steerlab.activations.everyday_writing.MIN_CHARS", 1)
    out = tmp_path / "corpus"
    args = ["corpus", "build-default", "--no-text", "--no-chat", "--limit", "60", "--batch-size", "30"]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--model", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    assert len(_rows(out / "writing.jsonl")) == 60 and not (out / "chat.jsonl").exists() and not (out / "text").exists()
    assert _rows(out / "writing_train.jsonl")
    # the part's harvest reads the recipe's folder under STEERLAB_HOME: point it at this one
    (steerlab_home / "corpora").mkdir(parents=True, exist_ok=True)
    (steerlab_home / "corpora" / "default").symlink_to(out)
    harvest = ["harvest", "--default-corpus", "writing", "--layer", "2", "--context-length", "32"]
    res = CliRunner().invoke(app, [*harvest, "--out", str(tmp_path / "acts"), "--model", str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["complete"] is True
