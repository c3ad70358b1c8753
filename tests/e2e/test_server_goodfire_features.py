"""The goodfire 0.3.5 SDK's feature and analysis calls, unchanged, against a real server process."""

import goodfire
import numpy as np
import pytest

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONV = [
    {"role": "user", "content": "Bonjour, comment allez-vous ?"},
    {"role": "assistant", "content": "Très bien, merci ! Et vous ?"},
]


@pytest.fixture(scope="module")
def client(live_server):
    return goodfire.Client(api_key=live_server.key, base_url=live_server.url)


def test_search_lookup_list_rerank_neighbors(client):
    found = client.features.search("French text", model=MODEL, top_k=5)
    assert len(found) == 5 and all(f.label for f in found)
    first = found[0]
    assert str(client.features.lookup([first.index_in_sae], model=MODEL)[first.index_in_sae].uuid) == str(first.uuid)
    reranked = client.features.rerank(found, "French", model=MODEL, top_k=3)
    assert len(reranked) == 3 and {f.index_in_sae for f in reranked} <= {f.index_in_sae for f in found}
    neighbors = client.features.neighbors(first, model=MODEL, top_k=4)
    assert len(neighbors) == 4 and first.index_in_sae not in [f.index_in_sae for f in neighbors]


def test_inspect_activations_contrast_attribute_logits(client):
    context = client.features.inspect(CONV, model=MODEL)
    top = context.top(k=5)
    assert len(top) == 5
    matrix = client.features.activations(CONV, model=MODEL)
    assert matrix.shape[0] == len(context.tokens) and np.count_nonzero(matrix) > 0
    french, english = client.features.contrast(
        [CONV],
        [
            [
                {"role": "user", "content": "Hello, how are you?"},
                {"role": "assistant", "content": "Very well, thank you! And you?"},
            ]
        ],
        model=MODEL,
        top_k=3,
    )
    assert len(french) == 3 and len(english) == 3
    logits = client.chat.logits(CONV[:1], model=MODEL, top_k=5)
    assert len(logits.logits) == 5
    attribution = client.features.attribute(CONV, index=-1, model=MODEL)
    assert attribution is not None


def test_autosteer_autoconditional_and_contrastive_stimulus(client):
    """The SDK gives these 60 s / 30 s; the server's quick search must answer inside that on a CPU."""
    edits = client.features.AutoSteer("talk like a pirate", model=MODEL)
    features = list(edits)
    assert all(f.label is not None and f.index_in_sae >= 0 for f in features)
    variant = goodfire.Variant(MODEL)
    variant.set(edits)  # what the SDK's docs do with the result
    assert len(variant.controller.json()["interventions"]) == len(features)
    reply = client.chat.completions.create(
        [{"role": "user", "content": "Tell me about your day."}], model=variant, max_completion_tokens=8
    )
    assert reply.choices[0].message["content"]
    conditional = client.features.AutoConditional("when the user talks about cats", model=MODEL)
    assert conditional.conditionals and conditional.conditionals[0].operator in (">", ">=")
    chatty, plain = client.features.generate_contrastive_stimulus("talk like a pirate")
    assert len(chatty) == len(plain) > 0 and chatty[0][-1]["role"] == "assistant"
