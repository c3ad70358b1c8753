"""Issue 18 through the goodfire 0.3.5 SDK and the native routes of a real server (bundled model and
feature database): inspect's top features are specific to each text, the template is marked and not
scored, the shapes the SDK reads are unchanged."""

import goodfire
import httpx
import pytest

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ISSUE_TEXTS = [
    "What's the weather going to be like this weekend? I heard it might rain.",
    "How long should I roast a chicken in the oven, and at what temperature?",
    "My cat keeps scratching the sofa. How do I get her to stop?",
    "My father died last month and I can't stop crying. How do people cope with grief?",
]
TEMPLATE_AND_DENSE = {8982, 8886, 2212}


@pytest.fixture(scope="module")
def client(live_server):
    return goodfire.Client(api_key=live_server.key, base_url=live_server.url)


def _post(live_server, path: str, body: dict) -> dict:
    r = httpx.post(
        f"{live_server.url}{path}", json=body, headers={"Authorization": f"Bearer {live_server.key}"}, timeout=120
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("aggregate_by", ["frequency", "max"])
def test_sdk_top_is_specific_to_each_text(client, aggregate_by):
    tops = []
    for text in ISSUE_TEXTS:
        context = client.features.inspect([{"role": "user", "content": text}], model=MODEL, aggregate_by=aggregate_by)
        top = context.top(k=5)
        assert len(top) == 5
        assert all(isinstance(a.activation, (int, float)) and a.feature.index_in_sae >= 0 for a in top)
        tops.append({a.feature.index_in_sae for a in top})
    assert not set.intersection(*tops)
    assert all(not (t & TEMPLATE_AND_DENSE) for t in tops)


def test_compute_features_marks_the_template_and_keeps_every_token(live_server):
    messages = [{"role": "user", "content": ISSUE_TEXTS[0]}]
    tokens = _post(live_server, "/api/inference/v1/chat/tokenize", {"messages": messages, "model": MODEL})["tokens"]
    route = "/api/inference/v1/chat-attribution/compute-features"
    specific = _post(live_server, route, {"messages": messages, "rank_by": "specificity"})
    assert specific["ranked_by"] == "specificity" and len(specific["tokens"]) == len(tokens)
    template = [t for t in specific["tokens"] if t["template"]]
    assert template and all(not t["attributions"] for t in template)
    listed = [a for t in specific["tokens"] for a in t["attributions"]]
    assert listed and all(
        a["specificity"] >= 3.0 and {"id", "index_in_sae", "activation_strength"} <= set(a) for a in listed
    )
    old = _post(
        live_server,
        "/api/inference/v1/chat-attribution/compute-features",
        {"messages": messages, "rank_by": "frequency", "include_template": True},
    )
    assert old["ranked_by"] == "frequency" and all(t["attributions"] for t in old["tokens"])
    # the default: relevance, as /v1/inspect ranks; the tokens list notable firings of its top 10 features alone
    default = _post(live_server, route, {"messages": messages})
    native = _post(live_server, "/v1/inspect", {"messages": messages, "top_k": 10})
    assert default["ranked_by"] == "relevance" and len(default["tokens"]) == len(tokens)
    assert all(not t["attributions"] for t in default["tokens"] if t["template"])
    top = [f["index_in_sae"] for f in default["top_features"]]
    assert top == [f["index"] for f in native["top_features"]] and len(top) == 10
    listed = [a for t in default["tokens"] for a in t["attributions"]]
    assert {a["index_in_sae"] for a in listed} == set(top)
    assert all(a["specificity"] >= 2.5 and a["relevance"] is not None for a in listed)


def test_clients_top_follows_the_relevance_ranking(client, live_server):
    """steerlab's HTTP client: top(k) is /v1/inspect's top k, in order; the goodfire SDK's top(10) holds the same
    ten features (it orders them by aggregate_by), its top(5) five of them."""
    import steerlab

    ours = steerlab.Client(api_key=live_server.key, base_url=live_server.url)
    for text in ISSUE_TEXTS[:2]:
        messages = [{"role": "user", "content": text}]
        native = [
            f["index"] for f in _post(live_server, "/v1/inspect", {"messages": messages, "top_k": 10})["top_features"]
        ]
        mine = ours.features.inspect(messages, model=MODEL).top(k=7)
        assert mine.ranked_by == "relevance" and [a.feature.index_in_sae for a in mine] == native[:7]
        sdk = client.features.inspect(messages, model=MODEL)
        assert {a.feature.index_in_sae for a in sdk.top(k=10)} == set(native)
        assert {a.feature.index_in_sae for a in sdk.top(k=5)} <= set(native)


def test_native_inspect_and_contrast_name_their_statistic(live_server):
    messages = [{"role": "user", "content": ISSUE_TEXTS[2]}]
    found = _post(live_server, "/v1/inspect", {"messages": messages, "top_k": 5, "rank_by": "specificity"})
    assert found["ranked_by"] == "specificity" and "log10" in found["statistic"]
    assert all(f["specificity"] >= 3.0 for f in found["top_features"])
    assert any(t["template"] for t in found["tokens"]) and not all(t["template"] for t in found["tokens"])
    # the default: relevance (specificity weighted by what the text is about), named with its statistic
    default = _post(live_server, "/v1/inspect", {"messages": messages, "top_k": 5})
    assert default["ranked_by"] == "relevance" and "cos(text" in default["statistic"]
    assert len(default["top_features"]) == 5
    assert all(f["specificity"] >= 2.5 and f["relevance"] is not None for f in default["top_features"])
    keys = [f["specificity"] * max(f["relevance"], 0.0) for f in default["top_features"]]
    assert keys == sorted(keys, reverse=True)
    pirate = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Arr, ahoy matey, me hearty!"}]]
    plain = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help you?"}]]
    for rank_by in ("specificity", None):
        body = {"dataset_1": pirate, "dataset_2": plain, "top_k": 3, **({"rank_by": rank_by} if rank_by else {})}
        result = _post(live_server, "/v1/contrast", body)
        assert result["ranked_by"] == (rank_by or "relevance") and "too little data" in result["note"]
        assert all(f["score_low"] <= f["score"] <= f["score_high"] for f in result["dataset_1_features"])
        assert all(0.0 <= f["support"] <= 1.0 for f in result["dataset_1_features"] + result["dataset_2_features"])
        assert all((f["relevance"] is None) == (rank_by is not None) for f in result["dataset_1_features"])
