"""Hostile and careless requests (issue 15): each answers a 4xx naming the field, stores nothing it
refused, and never a 500. Apps over the tiny model with a random tiny SAE."""

import asyncio
import json
import stat
import time

import pytest
from fastapi.testclient import TestClient

from steerlab.engine.lab import Lab
from steerlab.server.app import create_app
from steerlab.server.keys import KeyStore
from steerlab.settings import Settings

COND = {"left_hand": {"features": [{"index_in_sae": 1}]}, "operator": ">", "right_hand": 0.5}
NUDGE = {"mode": "nudge", "features": {"features": [{"index_in_sae": 2}]}, "value": 0.5}
HI = [{"role": "user", "content": "hi"}]


def nested_groups(levels: int) -> dict:
    """A controller whose one scope's condition is ``levels`` groups nested in one another."""
    group = {"conditionals": [COND], "operator": "AND"}
    for _ in range(levels - 1):
        group = {"conditionals": [group], "operator": "AND"}
    return {"interventions": [], "scopes": [{"conditionals": group, "controller": {"interventions": [NUDGE]}}]}


def nested_scopes(levels: int) -> dict:
    """A controller with ``levels`` scopes, each inside the previous one's controller."""
    controller = {"interventions": [NUDGE], "scopes": []}
    for _ in range(levels):
        controller = {
            "interventions": [],
            "scopes": [{"conditionals": {"conditionals": [COND], "operator": "AND"}, "controller": controller}],
        }
    return controller


class ThreadCheckingLab(Lab):
    """A real lab that records whether each tokenization ran on a thread with a running event loop."""

    on_loop: list[bool]

    def prompt_ids(self, messages):
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return super().prompt_ids(messages)


@pytest.fixture()
def tiny_sae():
    import torch

    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae

    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=128, architecture="topk", k=8, hookpoint="model.layers.1"))
    return sae.requires_grad_(False)


@pytest.fixture()
def lab(tiny_lm, tiny_sae):
    lab = ThreadCheckingLab(tiny_lm, tiny_sae, max_batch=8)
    lab.on_loop = []
    yield lab
    lab.close()


def _client(tmp_path, lab, **settings) -> tuple[TestClient, str]:
    settings = Settings(db_path=tmp_path / "server.db", max_completion_tokens=8, **settings)
    _, key = KeyStore(settings.resolved_db_path()).create("tester")
    client = TestClient(create_app(settings, lab), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {key}"
    return client, key


@pytest.fixture()
def client(tmp_path, lab):
    client, _ = _client(tmp_path, lab)
    with client:
        yield client


def _post_raw(client, path: str, text: str):
    """POST a JSON body exactly as written (so ``\\ud800`` escapes reach the server unpaired)."""
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    return response.json()["error"]


# ------------------------------------------------------------------------ text no tokenizer can take
BAD_TEXT = {"surrogates": r"\ud800x\udfff", "nul": r"a\u0000b"}
CONVERSATION_ROUTES = [
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "%s"}], "max_completion_tokens": 2}'),
    ("/api/inference/v1/chat/completions", '{"messages": [{"role": "user", "content": "%s"}]}'),
    ("/api/inference/v1/chat/tokenize", '{"messages": [{"role": "user", "content": "%s"}]}'),
    ("/api/inference/v1/chat-attribution/compute-logits", '{"messages": [{"role": "user", "content": "%s"}]}'),
    ("/api/inference/v1/chat-attribution/compute-features", '{"messages": [{"role": "user", "content": "%s"}]}'),
    ("/v1/inspect", '{"messages": [{"role": "user", "content": "%s"}]}'),
    (
        "/api/inference/v1/attributions/compute-logit-attribution",
        '{"messages": [{"role": "user", "content": "%s"}], "startIndex": 1}',
    ),
]


@pytest.mark.parametrize("kind", BAD_TEXT)
@pytest.mark.parametrize(("path", "body"), CONVERSATION_ROUTES)
def test_text_with_surrogates_or_nul_is_a_400_naming_the_field(client, path, body, kind):
    error = _error(_post_raw(client, path, body % BAD_TEXT[kind]))
    assert error["param"] == "messages.0.content", error
    assert ("surrogate" if kind == "surrogates" else "NUL") in error["message"]


@pytest.mark.parametrize("kind", BAD_TEXT)
def test_bad_text_in_contrast_datasets_and_other_strings_is_a_400(client, kind):
    bad = BAD_TEXT[kind]
    conv = '[[{"role": "user", "content": "%s"}]]' % bad
    error = _error(
        _post_raw(client, "/v1/contrast", '{"dataset_1": %s, "dataset_2": [[{"role": "user", "content": "b"}]]}' % conv)
    )
    assert error["param"] == "dataset_1.0.0.content"
    error = _error(
        _post_raw(
            client, "/v1/chat/completions", '{"messages": [{"role": "user", "content": "x"}], "stop": "%s"}' % bad
        )
    )
    assert error["param"].startswith("stop")
    error = _error(_post_raw(client, "/v1/variants", '{"name": "%s", "controller": {}}' % bad))
    assert error["param"] == "name"
    # inside a controller: refused before parsing (a response echoing it could not be encoded)
    feature = '{"index_in_sae": 1, "label": "%s"}' % bad
    ctrl = '{"interventions": [{"mode": "nudge", "value": 1, "features": {"features": [%s]}}]}' % feature
    error = _error(_post_raw(client, "/v1/variants", '{"name": "v", "controller": %s}' % ctrl))
    assert error["param"] == "interventions[0].features.features[0].label", error
    assert client.get("/v1/variants").json() == {"variants": []}


def test_in_process_callers_get_the_same_check(lab):
    from steerlab.steering.errors import ConversationError

    with pytest.raises(ConversationError, match="surrogate") as err:
        lab.prompt_ids([{"role": "user", "content": "\ud800x"}])
    assert err.value.field == "messages[0].content"


# --------------------------------------------------------------------------- controller depth and size
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/inspect", "/v1/variants"])
@pytest.mark.parametrize("levels", [33, 350])
def test_deeply_nested_controllers_are_a_400_not_a_recursion_error(client, route, levels):
    body = {"messages": HI, "max_completion_tokens": 2, "name": "deep", "controller": nested_groups(levels)}
    error = _error(client.post(route, json=body))
    assert error["param"].startswith("scopes[0].conditionals") and "32 levels" in error["message"], error
    assert client.get("/v1/variants").json() == {"variants": []}


def test_controllers_within_the_caps_still_run(client):
    body = {"messages": HI, "max_completion_tokens": 2, "controller": nested_groups(30)}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    start = time.perf_counter()
    saved = client.post("/v1/variants", json={"name": "deep", "controller": nested_scopes(31)})
    assert saved.status_code == 200, saved.text[:300]
    assert time.perf_counter() - start < 5  # Controller.json was exponential in nesting: 2**31 calls here
    assert client.get("/v1/variants").status_code == 200


def test_json_of_a_nested_controller_is_linear():
    from steerlab.steering.controller_json import Controller

    controller = Controller.from_json(nested_scopes(31))
    start = time.perf_counter()
    text = controller.to_json()
    assert time.perf_counter() - start < 1
    assert Controller.from_json(text).to_json() == text


def test_too_many_features_is_a_400(client):
    many = {
        "interventions": [
            {"mode": "nudge", "value": 1, "features": {"features": [{"index_in_sae": i % 128} for i in range(600)]}}
        ]
    }
    error = _error(client.post("/v1/chat/completions", json={"messages": HI, "controller": many}))
    assert error["param"] == "controller" and "512 features" in error["message"]


def test_garbage_nested_past_any_depth_is_a_400(client):
    body = '{"name": "v", "controller": {"interventions": [], "pad": ' + "[" * 5000 + "]" * 5000 + "}}"
    assert _post_raw(client, "/v1/variants", body).status_code == 400
    assert client.get("/v1/variants").json() == {"variants": []}


# ------------------------------------------------------------------------------------ saved variants
def test_a_refused_save_stores_nothing(client):
    """Scopes nested >= 100 deep: today a 4xx/5xx *and* a stored row that breaks GET /v1/variants forever."""
    error = _error(client.post("/v1/variants", json={"name": "deep", "controller": nested_scopes(100)}))
    assert error["param"].startswith("scopes[0].controller") and "32 levels" in error["message"]
    listed = client.get("/v1/variants")
    assert listed.status_code == 200 and listed.json() == {"variants": []}


def test_variants_store_the_parsed_controller_not_the_raw_body(client):
    controller = {"interventions": [NUDGE], "pad": "x" * 250_000, "scopes": [], "extra": {"a": 1}}
    saved = client.post("/v1/variants", json={"name": "padded", "controller": controller})
    assert saved.status_code == 200, saved.text[:300]
    stored = client.get(f"/v1/variants/{saved.json()['variant_id']}").json()["controller"]
    assert "pad" not in stored and "extra" not in stored
    assert stored["interventions"][0]["features"]["features"][0]["index_in_sae"] == 2
    assert len(json.dumps(stored)) < 2000
    # what is stored runs as it is
    chat = client.post(
        "/v1/chat/completions",
        json={"messages": HI, "max_completion_tokens": 2, "variant_id": saved.json()["variant_id"]},
    )
    assert chat.status_code == 200


def test_variants_per_key_count_and_byte_quotas(tmp_path, lab):
    client, _ = _client(tmp_path, lab, max_variants_per_key=3, max_variant_bytes_per_key=4096)
    with client:
        for n in range(3):
            assert (
                client.post(
                    "/v1/variants", json={"name": f"v{n}", "controller": {"interventions": [NUDGE]}}
                ).status_code
                == 200
            )
        error = _error(client.post("/v1/variants", json={"name": "v4", "controller": {"interventions": [NUDGE]}}), 429)
        assert error["code"] == "max_variants"
        assert len(client.get("/v1/variants").json()["variants"]) == 3
        first = client.get("/v1/variants").json()["variants"][0]["variant_id"]
        assert client.delete(f"/v1/variants/{first}").status_code == 200
        big = {
            "interventions": [
                {
                    "mode": "nudge",
                    "value": 1,
                    "features": {"features": [{"index_in_sae": i, "label": "l" * 20} for i in range(100)]},
                }
            ]
        }
        error = _error(client.post("/v1/variants", json={"name": "big", "controller": big}), 429)
        assert error["code"] == "max_variant_bytes" and error["param"] == "controller"
        assert len(client.get("/v1/variants").json()["variants"]) == 2


# ---------------------------------------------------------------------------------- off the event loop
def test_chat_tokenizes_in_the_worker_pool_not_on_the_event_loop(client, lab):
    for stream in (False, True):
        response = client.post(
            "/v1/chat/completions", json={"messages": HI, "max_completion_tokens": 2, "stream": stream}
        )
        assert response.status_code == 200
    assert lab.on_loop == [False, False]


# ------------------------------------------------------------------------------------------ operations
def test_server_db_is_created_owner_only(tmp_path, lab):
    client, _ = _client(tmp_path, lab)
    with client:
        assert (
            client.post("/v1/variants", json={"name": "v", "controller": {"interventions": [NUDGE]}}).status_code == 200
        )
    for path in tmp_path.glob("server.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_metrics_need_a_key_unless_public(tmp_path, lab):
    client, key = _client(tmp_path, lab)
    with client:
        assert client.get("/metrics").status_code == 200  # with the key
        assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    public, _ = _client(tmp_path / "p", lab, public_metrics=True)
    with public:
        response = public.get("/metrics", headers={"Authorization": ""})
        assert response.status_code == 200 and "steerlab_engine_active" in response.text


@pytest.mark.parametrize(
    ("page", "assets"), [("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]), ("/redoc", ["redoc.standalone.js"])]
)
def test_api_docs_load_their_assets_from_this_server(client, page, assets):
    html = client.get(page)
    assert html.status_code == 200
    assert "cdn." not in html.text and "fonts.googleapis" not in html.text, html.text
    for asset in assets:
        assert f"/docs-assets/{asset}" in html.text
        served = client.get(f"/docs-assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000
