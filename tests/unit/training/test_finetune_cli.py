"""``steerlab finetune`` end to end on the tiny model: a run, its folder loaded with --model, and bad input."""

import json

import pytest
from typer.testing import CliRunner

from steerlab.cli import app
from tests.unit.steering.conftest import make_tiny_sae
from tests.unit.training.conftest import conversations, write_jsonl

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def sae_dir(tmp_path):
    return make_tiny_sae().save(tmp_path / "sae")


def test_finetune_then_chat_with_the_saved_folder(tiny_model_dir, sae_dir, chat_file, tmp_path, steerlab_home):
    out = tmp_path / "ft"
    common = ["--model", tiny_model_dir, "--sae", sae_dir, "--dtype", "float32", "--device", "cpu", "--no-progress"]
    res = _run(
        "finetune", chat_file, "--out", out, "--max-steps", "2", "--eval-every", "2", "--batch-size", "4",
        "--ablate", "3,4", "--steer", "5=1.5", "--penalize", "6=0.5", *common,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.output[res.output.index("{") :])
    assert result["knobs"] == {"ablate": [3, 4], "steer": {"5": 1.5}, "penalize": {"6": 0.5}, "watch": [3, 4, 5, 6]}
    assert set(result["eval"]["features"]) == {"3", "4", "5", "6"}
    assert (out / "model" / "config.json").is_file() and (out / "curves.png").is_file()
    res = _run("chat", "hello", "--model", out / "model", "--sae", sae_dir, "--max-tokens", "3", "--temperature", "0")
    assert res.exit_code == 0, res.output
    res = _run("finetune", chat_file, "--out", out, "--max-steps", "2", *common)  # checkpoints there, no --resume
    assert res.exit_code != 0 and "--resume" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("lines", "extra", "needle"),
    [
        (None, ["--ablate", "128"], "0..127"),
        (None, ["--steer", "5=much"], "F=VALUE"),
        (None, ["--batch-size", "0"], "--batch-size"),
        (['{"messages": []}'], [], "line 1"),
        ([], [], "no examples"),
    ],
)
def test_bad_input_fails_in_one_line(tiny_model_dir, sae_dir, tmp_path, lines, extra, needle, steerlab_home):
    data = tmp_path / "d.jsonl"
    if lines is None:
        write_jsonl(data, conversations(4))
    else:
        data.write_text("".join(line + "\n" for line in lines))
    res = _run("finetune", data, "--out", tmp_path / "o", "--model", tiny_model_dir, "--sae", sae_dir, *extra)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
