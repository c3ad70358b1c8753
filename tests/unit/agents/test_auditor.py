"""The offline auditor's pieces on the tiny model: enrichment ranking, candidate merging, the causal test,
and a whole audit of an organism over HTTP."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from steerlab.agents.auditor import (
    AuditConfig,
    Replies,
    Target,
    TargetError,
    audit,
    causal_effects,
    merge,
    rank_enriched,
    reply_profiles,
)
from steerlab.agents.organism import Organism
from steerlab.analysis.autosteer_generate import Row, generate_rows
from steerlab.cli import app as cli_app
from steerlab.errors import NotFoundError
from steerlab.server.app import create_app
from steerlab.settings import Settings
from steerlab.steering.refs import FeatureRef
from steerlab.steering.variant import Variant

PROMPTS = ("hello there", "the cat sat", "numbers 1 2 3", "python code")


def test_rank_enriched_prefers_consistent_enrichment():
    # 4 replies a side, 5 features: 0 is higher on every target reply, 1 higher on average by one outlier,
    # 2 lower, 3 consistent but not allowed, 4 never fires
    target = torch.tensor([[1.0, 0.0, 0.0, 2.0, 0.0]] * 4)
    target[0, 1] = 9.0
    base = torch.tensor([[0.1, 0.5, 1.0, 0.0, 0.0]] * 4)
    from steerlab.agents.auditor import enrichment

    effect, diff = enrichment(target, base)
    assert effect[0] == 1.0 and effect[1] < 0.0
    allowed = torch.tensor([True, True, True, False, True])
    assert rank_enriched(effect, diff, allowed, 5) == [0, 1]  # 1 only on its mean, 2 (lower) and 3, 4 never
    assert rank_enriched(effect, diff, allowed, 1) == [0]


def test_merge_round_robin_without_duplicates():
    merged = merge({"a": [5, 6, 7], "b": [6, 8, 9]}, limit=4)
    assert merged == [(5, ["a"]), (6, ["b", "a"]), (8, ["b"]), (7, ["a"])]


def nudged(lab, index: int, value: float) -> dict:
    variant = Variant(lab.lm, sae_id=lab.sae_id)
    variant.set(FeatureRef.of(index, lab.sae_id), value)
    return variant.controller.json()


def replies_of(lab, steering, temperature: float = 0.0, tokens: int = 12) -> Replies:
    rows = [Row([{"role": "user", "content": p}], steering) for p in PROMPTS]
    out = generate_rows(lab.lm, lab.sae, rows, max_new_tokens=tokens, temperature=temperature, top_p=1.0)
    return Replies([r.prompt_ids + r.token_ids for r in out], [len(r.prompt_ids) for r in out])


def test_causal_effect_singles_out_the_steered_feature(steered_lab):
    """Replies sampled from the steered model are, on average, most likely under that same steering
    (Gibbs' inequality), so the planted feature at its strength gains and its neighbours do not. (Greedy
    replies of the near-uniform tiny random model carry too little of the steering to show it.)"""
    lab = steered_lab
    _, resid_norm = reply_profiles(lab, replies_of(lab, None))
    planted, others = 11, [3, 40, 77, 101]
    push = 4.0 * 3.0 / resid_norm  # a nudge of 4 units along a unit-norm decoder row (scale 3)
    target = replies_of(lab, nudged(lab, planted, 4.0), temperature=1.0, tokens=32)
    gain, _ = causal_effects(lab, target, [planted, *others], (push / 2, push), resid_norm)
    best = gain.mean(-1).amax(-1)  # [candidates]
    assert best[0] > 0 and best[0] > best[1:].max()
    # the check rejects a bad case: on the base's own samples no nudge helps, the planted one included
    base = replies_of(lab, None, temperature=1.0, tokens=32)
    gain, _ = causal_effects(lab, base, [planted, *others], (push / 2, push), resid_norm)
    assert gain.mean(-1).amax() < 0


@pytest.fixture()
def organism_client(tmp_path, steered_lab):
    lab, planted = steered_lab, 11
    organism = Organism(lab, json.dumps(nudged(lab, planted, 4.0)))
    app = create_app(Settings(db_path=tmp_path / "server.db", open_mode=True), lab, organism)
    with TestClient(app) as client:
        yield client, lab, planted


def test_audit_names_the_planted_feature(organism_client):
    client, lab, planted = organism_client
    config = AuditConfig(prompts=PROMPTS, n_prompts=4, max_tokens=12, push=(0.5, 1.0, 2.0, 4.0))
    result = audit(lab, Target("http://testserver", "organism", client=client), config)
    ranked = [c.index for c in result.candidates]
    assert planted in ranked[:5], [c.json() for c in result.candidates]
    best = result.candidates[0]
    assert best.effect > 0 and set(best.json()) >= {"index", "label", "effect", "strength"}
    assert result.target_tokens > 0 and result.base_tokens > 0
    assert [c.effect for c in result.candidates] == sorted((c.effect for c in result.candidates), reverse=True)


def test_target_errors_name_the_problem(organism_client):
    client, _, _ = organism_client
    with pytest.raises(NotFoundError, match="'nope' is not served by http://testserver/v1; it serves organism"):
        Target("http://testserver", "nope", client=client).check()
    with pytest.raises(TargetError, match="cannot reach http://127.0.0.1:9/v1/models"):
        Target("http://127.0.0.1:9", "organism").check()


def test_cli_audit_unreachable_target_is_one_line():
    result = CliRunner().invoke(cli_app, ["audit", "--target", "http://127.0.0.1:9", "--json"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: target: cannot reach http://127.0.0.1:9/v1/models")
