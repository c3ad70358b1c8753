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
