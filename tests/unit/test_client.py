"""steerlab.Client: the goodfire SDK's API in-process on the tiny model (every method), and over HTTP
against a real app for chat (the one Ember route the server has today)."""

import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

import steerlab
from steerlab.client_types import ContextInspector, Feature
from steerlab.features.schema import Label, SAEInfo
from steerlab.features.store import FeatureStore
from steerlab.steering.errors import SteeringError
from steerlab.steering.refs import FeatureGroup, FeatureRef
from tests.unit.analysis.test_autosteer import CRAFTED, pi_checker, promote_token, small_config
from tests.unit.steering.conftest import SAE_ID, make_tiny_sae

MESSAGES = [{"role": "user", "content": "the cat sat on the mat"}]
LABELS = {CRAFTED: "pirate talk", 5: "French text", 9: "python code"}


@pytest.fixture()
def tiny_sae():
    return make_tiny_sae()


@pytest.fixture()
def store(tmp_path):
    with FeatureStore(tmp_path / "features.db") as db:
        db.add_sae(
            SAEInfo(
                sae_id=SAE_ID, model="tiny-llama", hookpoint="model.layers.1", d_in=64, d_sae=128, architecture="topk"
            )
        )
        db.set_labels(SAE_ID, {i: Label(text=t, explainer="test") for i, t in LABELS.items()})
        yield db


@pytest.fixture()
def client(tiny_lm, tiny_sae, store):
    promote_token(tiny_lm, tiny_sae, CRAFTED, "pi")
    return steerlab.Client(lm=tiny_lm, sae=tiny_sae, store=store, model="tiny-llama")


def test_import_is_cheap_and_exports_are_lazy():
    code = (
        "import sys, steerlab; assert 'torch' not in sys.modules; c = steerlab.Client; v = steerlab.Variant; "
        "assert 'torch' not in sys.modules, 'Client import pulled in torch'; print(c.__name__, v.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Client", "Variant"]
    assert steerlab.Variant is __import__("steerlab.steering.variant", fromlist=["Variant"]).Variant
    with pytest.raises(AttributeError):
        steerlab.NoSuchThing  # noqa: B018


def test_feature_search_lookup_rerank_neighbors(client):
    found = client.features.search("pirate", model="tiny-llama", top_k=2)
    assert isinstance(found, FeatureGroup) and isinstance(found[0], Feature)
    pirate = found[0]
    assert (pirate.index_in_sae, pirate.label) == (CRAFTED, "pirate talk")
    assert pirate.uuid == FeatureRef.of(CRAFTED, SAE_ID).uuid
    looked = client.features.lookup([5, CRAFTED], model="tiny-llama")
    assert {i: f.label for i, f in looked.items()} == {5: "French text", CRAFTED: "pirate talk"}
    reranked = client.features.rerank(FeatureGroup([looked[CRAFTED], looked[5]]), "French", model="tiny-llama")
    assert reranked[0].index_in_sae == 5
    near = client.features.neighbors(pirate, model="tiny-llama", top_k=3)
    assert len(near) == 3 and CRAFTED not in near.indices
    with pytest.raises(SteeringError, match="indices"):
        client.features.lookup([128], model="tiny-llama")
    with pytest.raises(SteeringError, match="model"):
        client.features.search("pirate", model="some-other-model")


def test_inspect_activations_contrast_attribute(client):
    inspector = client.features.inspect(MESSAGES, model="tiny-llama")
    assert isinstance(inspector, ContextInspector)
    top = inspector.top(3)
    assert len(top) == 3 and all(a.activation > 0 and isinstance(a.feature, Feature) for a in top)
    assert [a.feature.index_in_sae for a in top] == [a.index for a in inspector.inspection.top(3)]
    assert len(inspector.tokens[3].inspect(2)) <= 2
    matrix = client.features.activations(MESSAGES, model="tiny-llama")
    assert matrix.shape == (len(inspector.tokens), 128)
    only = client.features.activations(MESSAGES, model="tiny-llama", features=top[0].feature)
    assert np.count_nonzero(only[:, [i for i in range(128) if i != top[0].feature.index]]) == 0
    side_1, side_2 = client.features.contrast(
        [MESSAGES], [[{"role": "user", "content": "bonjour le monde"}]], model="tiny-llama", top_k=2
    )
    assert len(side_1) == 2 and isinstance(side_2, FeatureGroup)
    attribution = client.features.attribute(MESSAGES, -1, model="tiny-llama")
    assert attribution.features and attribution.num_input_tokens > 0
    assert attribution.features == sorted(attribution.features, key=lambda a: a.value, reverse=True)


def test_chat_completions_variants_streaming_and_logits(client):
    pirate = client.features.search("pirate", model="tiny-llama", top_k=1)[0]
    variant = steerlab.Variant("tiny-llama")
    variant.set(pirate, 0.5)
    kw = dict(max_completion_tokens=12, temperature=0.0)
    plain = client.chat.completions.create(MESSAGES, model="tiny-llama", **kw)
    steered = client.chat.completions.create(MESSAGES, model=variant, **kw)
    assert isinstance(plain.choices[0].message["content"], str)
    assert steered.choices[0].message["content"] != plain.choices[0].message["content"]
    assert "pi" in steered.choices[0].message["content"]
    chunks = list(client.chat.completions.create(MESSAGES, model=variant, stream=True, **kw))
    assert "".join(c.choices[0].delta.content for c in chunks) == steered.choices[0].message["content"]
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    sampled = [
        client.chat.completions.create(MESSAGES, model="tiny-llama", seed=7, max_completion_tokens=8) for _ in range(2)
    ]
    assert sampled[0].choices[0].message == sampled[1].choices[0].message
    logits = client.chat.logits(MESSAGES, model=variant, top_k=4).logits
    assert len(logits) == 4 and list(logits.values()) == sorted(logits.values(), reverse=True)


def test_autosteer_in_process(client, monkeypatch):
    import steerlab.analysis.autosteer as autosteer

    original = autosteer.auto_steer

    def with_checker(*args, **kw):  # the tiny model's "words" mean nothing to MiniLM: judge by the word list
        return original(*args, **{**kw, "lexical": pi_checker})

    monkeypatch.setattr(autosteer, "auto_steer", with_checker)
    edits = client.features.AutoSteer("talk about pi", model="tiny-llama", config=small_config(parts=("concept",)))
    assert [f.index_in_sae for f in edits] == [CRAFTED] and edits.result.best.score > 0
    assert edits[0][0].label == "pirate talk" and edits[0][1] > 0
    variant = steerlab.Variant("tiny-llama")
    variant.set(edits)  # the SDK's idiom: FeatureEdits has as_dict()
    assert [(f.index, m) for f, _, m in variant.edits] == [(CRAFTED, "nudge")]
    stimulus_1, stimulus_2 = client.features.generate_contrastive_stimulus("talk like a pirate")
    assert len(stimulus_1) == len(stimulus_2) > 0


@pytest.fixture()
def http_client(tiny_lm, tiny_sae, tmp_path):
    from steerlab.engine.lab import Lab
    from steerlab.server.app import create_app
    from steerlab.settings import Settings

    promote_token(tiny_lm, tiny_sae, CRAFTED, "pi")
    lab = Lab(tiny_lm, tiny_sae, sae_id=SAE_ID, max_batch=4)  # the SAE the in-process client names too
    with TestClient(create_app(Settings(db_path=tmp_path / "server.db", open_mode=True), lab)) as http:
        yield steerlab.Client(api_key="test-key", base_url="http://testserver", http_client=http)
    lab.close()


def test_http_chat_matches_in_process(http_client, tiny_lm, tiny_sae):
    local = steerlab.Client(lm=tiny_lm, sae=tiny_sae, model="tiny-llama", sae_id=SAE_ID)
    variant = steerlab.Variant("tiny-llama", sae_id=SAE_ID)
    variant.set(CRAFTED, 0.5)
    kw = dict(max_completion_tokens=10, temperature=0.0)
    over_http = http_client.chat.completions.create(MESSAGES, model=variant, **kw)
    in_process = local.chat.completions.create(MESSAGES, model=variant, **kw)
    assert over_http.choices[0].message["content"] == in_process.choices[0].message["content"]
    chunks = list(http_client.chat.completions.create(MESSAGES, model=variant, stream=True, **kw))
    assert "".join(c.choices[0].delta.content for c in chunks) == over_http.choices[0].message["content"]
    from steerlab.client_http import APIError

    with pytest.raises(APIError) as err:
        http_client.chat.completions.create(MESSAGES, model="not-this-model", **kw)
    assert err.value.status_code == 404 and "model" in err.value.message


def test_autoconditional_in_process_reads_as_a_condition_group(client):
    cond = client.features.AutoConditional("when talking about France", model="tiny-llama")
    assert cond.effect_text is None and cond.edits == []
    variant = steerlab.Variant("tiny-llama")
    variant.set_when(cond, {5: 0.5})  # the SDK idiom: the result is the condition
    scope = variant.scopes[0]
    assert scope.condition.json() == cond.json() and scope.condition.items[0].op == ">"
    assert cond.trigger.index == scope.condition.items[0].left.indices[0]
