import pytest

from tests.unit.steering.conftest import SAE_ID, make_tiny_sae


@pytest.fixture()
def tiny_sae():
    return make_tiny_sae()


@pytest.fixture()
def sae_id():
    return SAE_ID
