"""The GPU path on a machine without one: a GPU or bf16 asked for where there is none is a clear one-line
error before anything loads; the CUDA-only checks, bf16 training and ``benchmarks/gpu.py`` are run on their
logic here (CI has no GPU; the figures themselves come from a CUDA machine)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from steerlab.cli import app
from steerlab.errors import InvalidInputError
from steerlab.models.loader import check_dtype_on, parse_device

ROOT = Path(__file__).resolve().parents[2]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@no_cuda
def test_cuda_where_there_is_none_names_the_device_field():
    with pytest.raises(InvalidInputError) as err:
        parse_device("cuda")
    assert err.value.field == "device" and "no CUDA GPU" in str(err.value)


def test_a_gpu_index_beyond_the_machine_lists_the_ones_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(InvalidInputError) as err:
        parse_device("cuda:2")
    assert err.value.field == "device" and err.value.allowed == "cuda:0, cuda:1"


def test_bf16_on_a_gpu_without_it_is_refused_naming_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    with pytest.raises(InvalidInputError) as err:
        check_dtype_on(torch.bfloat16, torch.device("cuda"))
    assert err.value.field == "dtype" and "Tesla T4" in str(err.value) and "float16" in err.value.allowed
    check_dtype_on(torch.float16, torch.device("cuda"))  # what it offers instead passes
    check_dtype_on(torch.bfloat16, torch.device("cpu"))  # CPUs compute bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    check_dtype_on(torch.bfloat16, torch.device("cuda"))


@no_cuda
@pytest.mark.parametrize(
    "command",
    [
        ["harvest", "--corpus", "x.jsonl", "--out", "h", "--device", "cuda"],
        ["sae", "train", "--acts", "h", "--out", "o", "--device", "cuda"],
        ["sae", "train", "--acts", "h", "--out", "o", "--dtype", "float64"],
        ["features", "build", "--text-file", "README.md", "--device", "cuda"],
        ["serve", "--device", "cuda", "--port", "8765"],
        ["chat", "hi", "--device", "cuda"],
    ],
)
def test_cli_refuses_a_missing_gpu_in_one_line(command, tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("STEERLAB_HOME", str(tmp_path))
    if command[0] == "harvest":
        command = [*command, "--model", str(tiny_model_dir)]
        (tmp_path / "x.jsonl").write_text('{"text": "a b c"}\n')
        command[2] = str(tmp_path / "x.jsonl")
    res = CliRunner().invoke(app, command)
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and ("device" in lines[0] or "dtype" in lines[0]), res.output
    assert "Traceback" not in res.output


def test_sae_training_in_bf16_autocast_trains_and_differs_from_float32(tmp_path):
    from steerlab.sae import SAEConfig, TensorActivationSource, TrainConfig, train_sae

    acts = torch.randn(4096 + 512, 32, generator=torch.Generator().manual_seed(0))
    cfg = SAEConfig(d_in=32, d_sae=64, architecture="topk", k=4)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        train = TrainConfig(total_tokens=4096, batch_size=256, holdout_tokens=512, compute_dtype=dtype)
        sae = train_sae(cfg, train, TensorActivationSource(acts), tmp_path / dtype, resume=False, progress=False)
        records = [json.loads(x) for x in (tmp_path / dtype / "metrics.jsonl").read_text().splitlines()]
        runs[dtype] = (sae.W_dec.detach().clone(), records[-1]["fvu"])
    assert runs["bfloat16"][0].dtype == torch.float32  # weights stay float32
    assert not torch.equal(runs["bfloat16"][0], runs["float32"][0])  # the autocast did change the arithmetic
    assert runs["bfloat16"][1] < 1.0 and abs(runs["bfloat16"][1] - runs["float32"][1]) < 0.1
    with pytest.raises(InvalidInputError, match="float64"):
        TrainConfig(compute_dtype="float64")


def test_weight_read_floor_arithmetic():
    bench = gpu_bench()

    class Props:  # an H100 SXM's reported memory: 2619 MHz, 5120-bit bus
        memory_clock_rate = 2_619_000
        memory_bus_width = 5120

    assert bench.peak_bandwidth(Props()) == pytest.approx(3.352e12, rel=1e-3)
    assert bench.peak_bandwidth(object()) is None
    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 10, bias=False)).to(torch.bfloat16)
    model[1].weight = model[0].weight  # tied: read once
    assert bench.weight_bytes(model) == (100 + 10) * 2
    assert bench.floor_tokens_per_s(3.0e12, 270_000_000) == pytest.approx(11111.1, rel=1e-4)


@no_cuda
def test_gpu_benchmark_without_cuda_is_one_line():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py")], capture_output=True, text=True)
    assert res.returncode != 0 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line == "benchmarks/gpu.py: no CUDA GPU visible to torch here; run it on a CUDA machine"


def test_gpu_benchmark_runs_its_whole_path_on_the_tiny_model(tmp_path, tiny_model_dir):
    """Every measurement of the script on the CPU and the tiny model: the code a GPU run executes."""
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    torch.manual_seed(0)
    create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1")).save(tmp_path / "s")
    result = gpu_bench().main(
        [
            *("--model", str(tiny_model_dir), "--sae", str(tmp_path / "s"), "--device", "cpu", "--dtype", "float32"),
            *("--tokens", "8", "--streams", "4", "--harvest-sequences", "8", "--train-tokens", "8192"),
            *("--bandwidth-bytes", str(1 << 24), "--out", str(tmp_path / "gpu.json")),
        ]
    )
    assert json.loads((tmp_path / "gpu.json").read_text()) == result
    assert set(result["decode_tok_s"]) == {
        "engine_b1_unsteered",
        "engine_b1_steered",
        "engine_b4_unsteered",
        "engine_b4_steered",
        "hf_generate_b1",
        "hf_generate_b4",
    }
    assert all(v > 0 for v in result["decode_tok_s"].values())
    assert result["weight_bytes"] > 0 and result["weight_read_floor_tok_s"] > 0
    assert result["harvest_tok_s"] > 0 and result["sae_training_tok_s"] > 0 and result["gpu"] == "none (cpu)"
