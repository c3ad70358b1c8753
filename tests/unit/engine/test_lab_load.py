"""``Lab.load`` pairs an SAE with its feature database and refuses one built for other weights."""

import pytest
import torch

from steerlab.engine.lab import Lab
from steerlab.features.identity import sae_info
from steerlab.features.store import FeatureStore
from steerlab.sae.config import SAEConfig
from steerlab.sae.variants.topk import TopKSAE


def saved_sae(folder, seed: int):
    cfg = SAEConfig(
        d_in=64, d_sae=32, architecture="topk", k=4, model_name="tiny-llama", hookpoint="model.layers.1", layer=1
    )
    sae = TopKSAE(cfg, generator=torch.Generator().manual_seed(seed)).eval()
    sae.save(folder)
    return sae


def database_for(sae, path):
    with FeatureStore(path) as store:
        store.add_sae(sae_info(sae))
    return path


def test_loads_the_database_built_for_the_sae(tiny_model_dir, tmp_path):
    sae = saved_sae(tmp_path / "sae", seed=0)
    lab = Lab.load(str(tiny_model_dir), tmp_path / "sae", database_for(sae, tmp_path / "features.db"))
    try:
        assert lab.store is not None and lab.sae_id == sae_info(sae).sae_id
    finally:
        lab.close()


def test_refuses_a_database_built_for_other_weights(tiny_model_dir, tmp_path):
    saved_sae(tmp_path / "sae", seed=0)
    other = saved_sae(tmp_path / "other", seed=1)
    db = database_for(other, tmp_path / "features.db")
    with pytest.raises(ValueError, match="describes SAE .* but the loaded SAE is .*rebuild it"):
        Lab.load(str(tiny_model_dir), tmp_path / "sae", db)
