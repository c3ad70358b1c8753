"""``Lab.inspect`` and ``Lab.contrast``: the analyses with the lab's own labels, identity and statistics, the model
held a chunk at a time (what the server and the agent tools use) or throughout (the in-process client)."""

import math

import pytest
import torch

from steerlab.analysis.contrast import contrast
from steerlab.analysis.inspect import inspect
from steerlab.engine.lab import Lab
from steerlab.features.schema import Label, SAEInfo
from steerlab.features.store import FeatureStore
from steerlab.steering.errors import SteeringError
from steerlab.steering.variant import Variant
from tests.unit.steering.conftest import SAE_ID, make_tiny_sae

CONVO = [{"role": "user", "content": "the cat sat on the mat and the dog ran in the park"}]
CATS = [[{"role": "user", "content": "the cat sat on the mat"}], [{"role": "user", "content": "a cat and a kitten"}]]
NUMBERS = [[{"role": "user", "content": "1 2 3 4 5 6"}], [{"role": "user", "content": "seven eight nine ten"}]]


@pytest.fixture()
def lab(tmp_path, tiny_lm):
    store = FeatureStore(tmp_path / "features.db")
    info = SAEInfo(
        sae_id=SAE_ID, model="tiny-llama", hookpoint="model.layers.1", d_in=64, d_sae=128, architecture="topk"
    )
    store.add_sae(info)
    store.set_labels(SAE_ID, {i: Label(text=f"feature {i}", explainer="test") for i in range(0, 128, 2)})
    lab = Lab(tiny_lm, make_tiny_sae(), store, SAE_ID, max_batch=2, chunk_tokens=4)
    holds: list[int] = []
    real = lab.exclusive

    def counted():  # the real hold, counted
        holds.append(1)
        return real()

    lab.exclusive = counted  # type: ignore[method-assign]
    lab.holds = holds  # type: ignore[attr-defined]
    yield lab
    lab.close()


def test_inspect_holds_the_model_a_chunk_at_a_time_or_throughout(lab):
    shared = lab.inspect(CONVO)
    chunks = math.ceil(len(shared) / lab.chunk_tokens)
    assert chunks > 2 and len(lab.holds) == chunks
    lab.holds.clear()
    whole = lab.inspect(CONVO, exclusive=True)
    assert len(lab.holds) == 1
    direct = inspect(lab.lm, lab.sae, CONVO, labels=lab.labels, sae_id=SAE_ID)
    assert shared.tokens == whole.tokens == direct.tokens
    torch.testing.assert_close(shared.codes_raw, direct.codes_raw, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(whole.codes_raw, direct.codes_raw, rtol=1e-4, atol=1e-4)
    # the lab's labels and ranking (no statistics in this database: frequency, said so)
    top = shared.top(5)
    assert [a.index for a in top] == [a.index for a in direct.top(5)]
    assert all(a.label == (f"feature {a.index}" if a.index % 2 == 0 else "") for a in top)
    assert shared.default_ranking == "frequency" and "no feature database statistics" in shared.note
    # the lab's SAE identity: a variant naming another SAE's feature is refused
    other = Variant("tiny-llama", sae_id="some-other-sae")
    other.set(3, 0.5)
    with pytest.raises(SteeringError, match="uuid"):
        lab.inspect(CONVO, other)


def test_contrast_holds_the_model_a_chunk_at_a_time_or_throughout(lab):
    shared = lab.contrast(CATS, NUMBERS, top_k=3, k_to_remove=2)
    assert len(lab.holds) > len(CATS) + len(NUMBERS)  # every conversation in more than one piece
    lab.holds.clear()
    whole = lab.contrast(CATS, NUMBERS, top_k=3, k_to_remove=2, exclusive=True)
    assert len(lab.holds) == 1
    direct = contrast(lab.lm, lab.sae, CATS, NUMBERS, top_k=3, k_to_remove=2)
    for result in (shared, whole):
        assert result.ranked_by == "frequency"
        assert [f.index for f in result.dataset_1_features] == [f.index for f in direct.dataset_1_features]
        assert [f.index for f in result.dataset_2_features] == [f.index for f in direct.dataset_2_features]
        assert len(result.dataset_1_features) <= 3 and len(result.dataset_2_features) <= 2
    assert all(f.label == (f"feature {f.index}" if f.index % 2 == 0 else "") for f in shared.dataset_1_features)
    with pytest.raises(SteeringError) as err:
        lab.contrast(CATS, NUMBERS, rank_by="specificity")
    assert err.value.field == "rank_by"
