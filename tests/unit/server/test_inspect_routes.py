"""Inspect routes over the tiny model without a feature database: the template is marked, the old
ranking is the default and says so, asking for specificity is a 400 naming rank_by."""

HI = [{"role": "user", "content": "the cat sat on the mat"}]


def test_compute_features_marks_template_tokens(steered_server):
    client, _ = steered_server
    body = client.post("/api/inference/v1/chat-attribution/compute-features", json={"messages": HI}).json()
    assert body["ranked_by"] == "frequency"
    flags = [t["template"] for t in body["tokens"]]
    assert any(flags) and not all(flags)
    assert all(t["attributions"] for t in body["tokens"])  # every token still shown, template included


def test_native_inspect_scores_content_unless_asked(steered_server):
    client, _ = steered_server
    content = client.post("/v1/inspect", json={"messages": HI, "top_k": 3}).json()
    everything = client.post("/v1/inspect", json={"messages": HI, "top_k": 3, "include_template": True}).json()
    n_content = sum(1 for t in content["tokens"] if not t["template"])
    assert content["ranked_by"] == "frequency" and content["top_features"][0]["specificity"] is None
    assert all(f["count"] <= n_content for f in content["top_features"])
    assert everything["top_features"][0]["count"] > n_content


def test_specificity_without_a_database_names_the_field(steered_server):
    client, _ = steered_server
    for path in ("/v1/inspect", "/api/inference/v1/chat-attribution/compute-features"):
        r = client.post(path, json={"messages": HI, "rank_by": "specificity"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "rank_by", r.text
    r = client.post("/v1/contrast", json={"dataset_1": [HI], "dataset_2": [HI], "rank_by": "specificity"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rank_by", r.text
    r = client.post("/v1/inspect", json={"messages": HI, "rank_by": "popularity"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rank_by", r.text


def test_relevance_without_a_database_names_the_field(steered_server):
    client, _ = steered_server
    r = client.post("/v1/inspect", json={"messages": HI, "rank_by": "relevance"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rank_by", r.text
    r = client.post("/v1/contrast", json={"dataset_1": [HI], "dataset_2": [HI], "rank_by": "relevance"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rank_by", r.text
    body = client.post("/v1/inspect", json={"messages": HI, "top_k": 3}).json()
    assert body["ranked_by"] == "frequency" and "no feature database" in body["note"]


def test_compute_features_with_no_feature_named(steered_server):
    """An empty include_feature_indexes: every token with no features, and no top features (found by the fuzz)."""
    client, _ = steered_server
    r = client.post(
        "/api/inference/v1/chat-attribution/compute-features", json={"messages": HI, "include_feature_indexes": []}
    )
    assert r.status_code == 200, r.text
    assert r.json()["top_features"] == [] and all(not t["attributions"] for t in r.json()["tokens"])
