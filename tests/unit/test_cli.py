"""The CLI end to end on the tiny model: harvest -> train -> eval -> convert, and bad input."""

import json

import pytest
from typer.testing import CliRunner

from steerlab.cli import app
from tests.conftest import TINY_TEXT

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": " ".join(TINY_TEXT * 4)}) + "\n" for _ in range(30)))
    return path


def test_harvest_train_eval_convert(tiny_model_dir, text_file, tmp_path, steerlab_home):
    acts, run = tmp_path / "acts", tmp_path / "run"
    res = _run(
        "harvest",
        "--model",
        tiny_model_dir,
        "--corpus",
        text_file,
        "--layer",
        "2",
        "--out",
        acts,
        "--context-length",
        "64",
        "--sequences-per-shard",
        "8",
        "--store-dtype",
        "float32",
    )
    assert res.exit_code == 0, res.output
    harvested = json.loads(res.stdout.strip().splitlines()[-1])
    assert harvested["complete"] is True and harvested["massive_tokens"] == 0
    res = _run(
        "sae",
        "train",
        "--acts",
        acts,
        "--out",
        run,
        "--expansion",
        "4",
        "--k",
        "8",
        "--batch-size",
        "128",
        "--holdout-tokens",
        "256",
    )
    assert res.exit_code == 0, res.output
    assert (run / "sae" / "cfg.json").is_file() and (run / "metrics.jsonl").is_file()
    assert "left out 0 massive tokens" in res.output and "the harvests count 0 per epoch" in res.output
    assert (run / "training_curves.png").stat().st_size > 1000
    res = _run(
        "sae",
        "eval",
        "--model",
        tiny_model_dir,
        "--sae",
        run / "sae",
        "--text-file",
        text_file,
        "--json",
        "--max-tokens",
        "400",
        "--context-length",
        "64",
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0 <= result["fvu"] < 1 and result["l0"] <= 8
    res = _run("sae", "convert", run / "sae", tmp_path / "lens", "--to", "saelens")
    assert res.exit_code == 0 and (tmp_path / "lens" / "sae_weights.safetensors").is_file()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["harvest", "--model", "/no/such/model", "--corpus", "x.jsonl", "--out", "o"], "does not exist"),
        (["harvest", "--corpus", "x.jsonl", "--out", "o", "--store-dtype", "int4"], "dtype must be one of"),
        (["chat", "hi", "--feature", "3"], "expected IDX=VALUE"),
        (["sae", "convert", "/no/such/sae", "out"], "/no/such/sae"),
        (["sae", "train", "--acts", "h", "--out", "o", "--massive-factor", "-1"], "massive_factor"),
    ],
)
def test_bad_input_is_one_line_without_traceback(args, needle, steerlab_home):
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_layer_out_of_range(tiny_model_dir, text_file, tmp_path, steerlab_home):
    res = _run("harvest", "--model", tiny_model_dir, "--corpus", text_file, "--layer", "9", "--out", tmp_path / "a")
    assert res.exit_code == 2 and "0..3" in res.output


def test_corrupt_sae_is_refused(tiny_model_dir, tmp_path, text_file, steerlab_home):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cfg.json").write_text("{not json")
    (bad / "sae.safetensors").write_bytes(b"\x00" * 10)
    res = _run("sae", "eval", "--model", tiny_model_dir, "--sae", bad, "--text-file", text_file)
    assert res.exit_code == 2 and "cfg.json" in res.output
