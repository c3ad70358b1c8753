"""schemathesis against our OpenAPI spec: whatever the body, never a 5xx."""

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from steerlab.engine.lab import Lab
from steerlab.server.app import create_app
from steerlab.settings import Settings


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, tiny_tokenizer):
    import torch

    from steerlab.models.loader import LoadedModel
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae
    from tests.conftest import make_tiny_llama

    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1"))
    sae.requires_grad_(False)
    lab = Lab(LoadedModel("tiny-llama", make_tiny_llama(len(tiny_tokenizer)), tiny_tokenizer), sae, max_batch=8)
    settings_ = Settings(
        db_path=tmp_path_factory.mktemp("fuzz") / "s.db",
        open_mode=True,
        max_completion_tokens=8,
        requests_per_minute=100_000,
        tokens_per_minute=10**9,
    )
    with pytest.MonkeyPatch.context() as patch:  # classifiers a fuzzed training job saves stay in here
        patch.setenv("STEERLAB_CLASSIFIERS_DIR", str(tmp_path_factory.mktemp("classifiers")))
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_, lab))
    lab.close()


def test_no_server_errors_on_any_operation(fuzzed_app):
    """Every operation in the spec, ~30 generated requests each (schemathesis strategies + hypothesis)."""
    from hypothesis import given

    seen, timings = [], {}
    for result in fuzzed_app.get_all_operations():
        operation = result.ok()
        seen.append(f"{operation.method.upper()} {operation.path}")

        @given(operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])

        start = time.perf_counter()
        check()
        timings[seen[-1]] = round(time.perf_counter() - start, 1)
    print(timings)
    assert "POST /v1/chat/completions" in seen and len(seen) >= 8
