import concurrent.futures

from steerlab.features.schema import feature_uuid

MSG = [{"role": "user", "content": "the cat"}]


def controller(lab, index: int, value: float, mode: str = "nudge", sae_id: str | None = None) -> dict:
    """Controller JSON editing feature ``index`` of the lab's SAE (of ``sae_id``'s when given)."""
    feature = {
        "uuid": feature_uuid(sae_id, index) if sae_id else lab.feature_id(index),
        "label": f"f{index}",
        "index_in_sae": index,
        "max_activation_strength": 1,
    }
    return {
        "interventions": [{"mode": mode, "features": {"features": [feature]}, "value": value}],
        "scopes": [],
        "name": "test",
        "nonzero_strength_threshold": None,
        "min_nudge_entropy": None,
        "max_nudge_entropy": None,
    }


def _chat(client, **extra):
    body = {"messages": MSG, "max_completion_tokens": 10, "temperature": 0, **extra}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def test_controller_changes_the_reply_and_saved_variant_gives_the_same(steered_server):
    client, lab = steered_server
    base = _chat(client)
    steered = _chat(client, controller=controller(lab, 5, 8.0))
    assert steered != base
    saved = client.post("/v1/variants", json={"name": "loud 5", "controller": controller(lab, 5, 8.0)}).json()
    assert _chat(client, variant_id=saved["variant_id"]) == steered
    assert client.get(f"/v1/variants/{saved['variant_id']}").json()["controller"] == controller(lab, 5, 8.0)


def test_bad_controllers_are_400_naming_the_field(steered_server):
    client, lab = steered_server
    for bad in [controller(lab, 500, 1.0), {"interventions": "nope"}, controller(lab, 5, 1.0, mode="shout")]:
        r = client.post("/v1/chat/completions", json={"messages": MSG, "controller": bad})
        assert r.status_code == 400, (bad, r.text)
        assert "interventions" in r.json()["error"]["message"] or r.json()["error"]["param"]
    r = client.post("/v1/variants", json={"name": "bad", "controller": controller(lab, 500, 1.0)})
    assert r.status_code == 400 and client.get("/v1/variants").json()["variants"] == []


def test_concurrent_requests_with_different_controllers_equal_each_alone(steered_server):
    client, lab = steered_server
    variants = [None] + [controller(lab, i * 9 % 128, 4.0 * (-1) ** i) for i in range(1, 12)]
    alone = [_chat(client, **({"controller": c} if c else {})) for c in variants]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda c: _chat(client, **({"controller": c} if c else {})), variants))
    assert together == alone and len(set(alone)) > 2


def test_controller_naming_another_saes_features_is_refused(steered_server):
    """Feature UUIDs say which SAE a controller was built for: another SAE's index 5 is not this one's."""
    client, lab = steered_server
    theirs = controller(lab, 5, 8.0, sae_id="some-model/model.layers.1/topk-128-0123456789")
    r = client.post("/v1/chat/completions", json={"messages": MSG, "max_completion_tokens": 4, "controller": theirs})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "interventions[0].features.features[0].uuid" and lab.sae_id in error["message"]
    r = client.post("/v1/variants", json={"name": "theirs", "controller": theirs})
    assert r.status_code == 400 and r.json()["error"]["param"] == "interventions[0].features.features[0].uuid"
