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
    specific = _post(live_server, "/api/inference/v1/chat-attribution/compute-features", {"messages": messages})
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


def test_native_inspect_and_contrast_name_their_statistic(live_server):
    found = _post(live_server, "/v1/inspect", {"messages": [{"role": "user", "content": ISSUE_TEXTS[2]}], "top_k": 5})
    assert found["ranked_by"] == "specificity" and "log10" in found["statistic"]
    assert all(f["specificity"] >= 3.0 for f in found["top_features"])
    assert any(t["template"] for t in found["tokens"]) and not all(t["template"] for t in found["tokens"])
    pirate = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Arr, ahoy matey, me hearty!"}]]
    plain = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help you?"}]]
    result = _post(live_server, "/v1/contrast", {"dataset_1": pirate, "dataset_2": plain, "top_k": 3})
    assert result["ranked_by"] == "specificity" and "too little data" in result["note"]
    assert all(f["score_low"] <= f["score"] <= f["score_high"] for f in result["dataset_1_features"])
    assert all(0.0 <= f["support"] <= 1.0 for f in result["dataset_1_features"] + result["dataset_2_features"])
