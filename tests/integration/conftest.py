import pytest

from steerlab.models.loader import load_model


@pytest.fixture(scope="session")
def default_lm():
    """The real default model (converted from the bundled GGUF once, then cached)."""
    return load_model("default")


@pytest.fixture(scope="session")
def default_sae(default_lm):
    from steerlab.sae.bundled import load_sae_for

    return load_sae_for(default_lm)


@pytest.fixture(scope="session")
def default_lab(default_lm, default_sae):
    """The runtime on the default model and its bundled SAE (named by its weights, as its database is)."""
    from steerlab.engine.lab import Lab

    lab = Lab(default_lm, default_sae, max_batch=4)
    yield lab
    lab.close()


@pytest.fixture(scope="session")
def default_search(default_lm, default_sae):
    """Label search over the feature database shipped next to the bundled SAE (what the server and the
    client use)."""
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.features.identity import DB_FILENAME
    from steerlab.features.search import FeatureSearch
    from steerlab.features.store import FeatureStore

    store = FeatureStore(bundled_sae_path(default_lm.name) / DB_FILENAME, readonly=True)
    sae_id = store.list_saes()[0].sae_id
    yield FeatureSearch(store, sae_id, decoder=default_sae.W_dec.detach().float().numpy())
    store.close()
