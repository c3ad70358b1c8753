"""Public SAE + public labels, no training: ``steerlab sae import`` then ``steerlab sae import-labels`` from a
Neuronpedia export; an export for another SAE (model id, block, width, indices) is refused, nothing written."""

from __future__ import annotations

import gzip
import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from steerlab.cli import app
from steerlab.features.identity import sae_info
from steerlab.features.neuronpedia import NeuronpediaExportError, import_labels, read_export
from steerlab.features.store import FeatureStore
from steerlab.sae.base import SAE

runner = CliRunner()
D_SAE = 96


def _records(model="llama3.1-8b-it", layer="2-res-tiny", indices=(0, 5, 95), **extra):
    return [
        {
            "modelId": model,
            "layer": layer,
            "index": str(i),
            "description": f"feature {i} fires on pirates",
            "explanationModelName": "gpt-4o-mini",
            "typeName": "oai_token-act-pair",
            **extra,
        }
        for i in indices
    ]


@pytest.fixture()
def imported(tmp_path, tiny_model_dir):
    """A Goodfire-layout SAE for the tiny Llama's block 2 (d_model 64), imported through the CLI."""
    src = tmp_path / "Tiny-SAE-l2.safetensors"
    g = torch.Generator().manual_seed(0)
    save_file(
        {
            "encoder_linear.weight": torch.randn(D_SAE, 64, generator=g),
            "encoder_linear.bias": torch.zeros(D_SAE),
            "decoder_linear.weight": torch.randn(64, D_SAE, generator=g),
            "decoder_linear.bias": torch.zeros(64),
        },
        src,
    )
    out = tmp_path / "sae"
    result = runner.invoke(app, ["sae", "import", str(src), str(out), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "relu SAE d_in=64 d_sae=96 at model.layers.2" in result.output
    return out


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_labels_land_in_the_database_of_the_imported_sae(imported, tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps(_records()))
    result = _cli("sae", "import-labels", export, "--sae", imported, "--neuronpedia-id", "llama3.1-8b-it/2-res-tiny")
    assert result.exit_code == 0, result.output
    assert "3 labels from llama3.1-8b-it/2-res-tiny" in result.output
    sae = SAE.load(imported)
    with FeatureStore(imported / "features.db", readonly=True) as store:
        labels = store.labels(sae_info(sae).sae_id)
    assert sorted(labels) == [0, 5, 95]
    assert labels[5].text == "feature 5 fires on pirates" and labels[5].explainer == "neuronpedia:gpt-4o-mini"
    # JSON lines, gzipped (Neuronpedia's bulk datasets); existing labels are kept unless --overwrite
    lines = tmp_path / "batch-0.jsonl.gz"
    lines.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in _records(indices=(5, 7))).encode()))
    result = _cli("sae", "import-labels", lines, "--sae", imported)
    assert result.exit_code == 0 and "1 labels" in result.output and "1 existing labels kept" in result.output


@pytest.mark.parametrize(
    ("records", "expected", "message"),
    [
        (_records(model="gemma-2-2b"), "llama3.1-8b-it/2-res-tiny", "is for gemma-2-2b/2-res-tiny, not llama3.1"),
        (_records(layer="19-llamascope-res-32k"), None, "block 19.* reads block 2"),
        (_records(layer="2-gemmascope-res-16k"), None, "16000 or 16384 latents.*d_sae=96"),
        (_records(indices=(3, 200)), None, "index '200' is outside this SAE"),
        (_records() + _records(layer="3-res-tiny"), None, "mixes 2 SAEs"),
    ],
)
def test_an_export_for_another_sae_is_refused_and_nothing_is_written(imported, tmp_path, records, expected, message):
    export = tmp_path / "export.json"
    export.write_text(json.dumps(records))
    args = ["sae", "import-labels", export, "--sae", imported] + (["--neuronpedia-id", expected] if expected else [])
    result = _cli(*args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1  # one line
    import re

    assert re.search(message, result.output), result.output
    sae = SAE.load(imported)
    with FeatureStore(imported / "features.db", readonly=True) as store:
        assert store.labels(sae_info(sae).sae_id) == {}


def test_unreadable_exports(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"features": 3}')
    with pytest.raises(NeuronpediaExportError, match="expected a list"):
        read_export(bad)
    bad.write_text(json.dumps([{"index": 1}]))
    with pytest.raises(NeuronpediaExportError, match="lacks modelId, layer, description"):
        read_export(bad)


def test_import_labels_api_refuses_a_width_mismatch(tmp_path):
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    sae = create_sae(SAEConfig(d_in=8, d_sae=16384, architecture="topk", k=4, hookpoint="model.layers.20", layer=20))
    export = tmp_path / "e.json"
    export.write_text(json.dumps(_records(model="gemma-2-2b", layer="20-gemmascope-res-65k", indices=(1,))))
    with FeatureStore(tmp_path / "f.db") as store:
        store.add_sae(sae_info(sae))
        with pytest.raises(NeuronpediaExportError, match="65000 or 65536 or 66560 latents"):
            import_labels(store, sae_info(sae).sae_id, export, layer=20)
        export.write_text(json.dumps(_records(model="gemma-2-2b", layer="20-gemmascope-res-16k", indices=(1,))))
        assert import_labels(store, sae_info(sae).sae_id, export, layer=20).labels == 1
