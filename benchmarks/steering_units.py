"""How strong must a nudge be before greedy output changes, and before the feature's concept takes over?

    OMP_NUM_THREADS=1 python benchmarks/steering_units.py --prompts heldout --strong 16 --random 8 \
        --json-out docs/bench_steering_units.json

Measures, on the shipped SAE, for a sample of features that fire strongly on a set of prompts (the
strongest ones on each prompt's own tokens) plus features drawn at random among live ones, the nudge
strength at which the 30 greedy tokens of the reply first differ from the unsteered reply, and the
strength at which the feature "takes over" the reply. Strengths are swept on a geometric grid (factor
sqrt 2) and reported in three units:

- ``q``: the old unit, 1.0 = the feature's 0.99 quantile of nonzero activations (``feature_scale``);
- ``push``: how far the nudge moves the residual, as a fraction of the residual's median norm at the
  hookpoint (``q * feature_scale * |W_dec[f]| / median_norm``), the quantity AutoSteer's grid is built on;
- ``unit``: the SAE's current steering unit (``steerlab.steering.units``), whatever it is calibrated to.

**Takeover** (strict): the reply is read back by the unsteered model, and the feature is active
(>= ``--active`` in q units) on at least ``--takeover-frac`` of the reply's tokens and on at least 0.3
more of them than in the unsteered reply. The check is shown to reject non-takeover cases: it is run on
every unsteered reply, and on each feature's takeover reply scored for a *different* feature of the
sample (a reply taken over by feature A is not one taken over by B); both rates are in the JSON.
**Wrecked**: the reply degenerates (fewer than 30% distinct tokens), reported so the top of the range
can be compared with it.

Prints per-feature rows on stderr and JSON (per feature, per prompt, and the spread of each unit across
features, as the geometric standard deviation: the smaller, the better that unit predicts behaviour).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import time

import torch

DEV_PROMPTS = (  # used while developing the measurement and choosing the calibration
    "Tell me about your favourite holiday.",
    "How do I sort a list in Python?",
    "What should I cook for dinner tonight?",
    "Write a short note to a friend who is moving away.",
)
HELDOUT_PROMPTS = (  # never looked at before the final run
    "Explain why the sky is blue.",
    "Give me three tips for a job interview.",
    "What is the capital of Australia and why?",
    "Describe a walk through a forest in autumn.",
)
GRID_PUSH = tuple(round(0.01 * math.sqrt(2) ** k, 4) for k in range(16))  # 0.01 .. 1.8 of the residual's norm
PROMOTED = 20  # the feature's top tokens by logit lens (W_U @ W_dec[f])


def _current_unit(sae) -> torch.Tensor:
    """Raw activation per steering unit as configured (``STEERLAB_STEERING_UNIT``)."""
    from steerlab.sae.units import steering_unit

    return steering_unit(sae).float().cpu()


def _densities(db_path, indices: list[int]) -> dict[int, float]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    out = {}
    for idx, stats in conn.execute(f"select idx, stats from features where idx in ({','.join(map(str, indices))})"):
        out[int(idx)] = float(json.loads(stats).get("density", float("nan"))) if stats else float("nan")
    conn.close()
    return out


def _labels(db_path, indices: list[int]) -> dict[int, str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    q = f"select idx, label_text from features where idx in ({','.join(map(str, indices))})"
    out = {int(i): t or "" for i, t in conn.execute(q)}
    conn.close()
    return out


def _read_back(lm, sae, reply_ids: list[list[int]], prompts: list[list[int]]) -> list[torch.Tensor]:
    """Per reply: [reply tokens, d_sae] codes in q units, the reply read by the unsteered model after its prompt."""
    from steerlab.models.hooks import forward_to_hookpoint

    scale = sae.feature_scale.detach().float().clamp_min(1e-12)
    out = []
    with torch.inference_mode():
        for prompt, reply in zip(prompts, reply_ids):
            if not reply:
                out.append(torch.zeros(0, sae.cfg.d_sae))
                continue
            ids = torch.tensor([prompt + reply], device=lm.device)
            h = forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)[0, len(prompt) :]
            out.append((sae.encode(h.to(sae.W_enc.dtype)).float() / scale).cpu())
    return out


def _frac(codes: torch.Tensor, index: int, active: float) -> float:
    return float((codes[:, index] >= active).float().mean()) if len(codes) else 0.0


def _share(ids: list[int], tokens: set[int]) -> float:
    return sum(t in tokens for t in ids) / len(ids) if ids else 0.0


def _first_diff(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)) if len(a) != len(b) else 10**9)


def _takeover(frac: float, base_frac: float, top: float, base_top: float, args: argparse.Namespace) -> bool:
    read_back = frac >= args.takeover_frac and frac - base_frac >= 0.3
    promoted = top >= args.promoted_frac and top - base_top >= 0.25
    return read_back or promoted


def _distinct(ids: list[int]) -> float:
    return len(set(ids)) / max(1, len(ids))


def _gsd(values: list[float]) -> float | None:
    """Geometric standard deviation (a factor): exp(std(log x))."""
    logs = [math.log(v) for v in values if v and v > 0 and math.isfinite(v)]
    if len(logs) < 2:
        return None
    m = sum(logs) / len(logs)
    return round(math.exp(math.sqrt(sum((x - m) ** 2 for x in logs) / (len(logs) - 1))), 3)


def _median(values: list[float]) -> float | None:
    v = sorted(x for x in values if x is not None and math.isfinite(x))
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def pick_features(lm, sae, prompts: list[str], strong: int, random_n: int, seed: int) -> list[tuple[int, str]]:
    """The features strongest (in q units, max over the text's tokens but the first) on each prompt's text,
    round-robin over prompts until ``strong`` are picked; then ``random_n`` live features at random."""
    from steerlab.models.hooks import forward_to_hookpoint

    scale = sae.feature_scale.detach().float().clamp_min(1e-12)
    ranked = []
    with torch.inference_mode():
        for text in prompts:
            ids = torch.tensor([lm.tokenizer(text)["input_ids"]], device=lm.device)
            h = forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)[0, 1:]
            q = (sae.encode(h.to(sae.W_enc.dtype)).float() / scale).amax(0).cpu()
            ranked.append(q.argsort(descending=True).tolist())
    chosen: list[tuple[int, str]] = []
    seen: set[int] = set()
    depth = 0
    while len(chosen) < strong and depth < 200:
        for order in ranked:
            f = order[depth]
            if f not in seen and len(chosen) < strong:
                seen.add(f)
                chosen.append((f, "strong"))
        depth += 1
    live = [i for i, s in enumerate(sae.feature_scale.tolist()) if s != 1.0 and i not in seen]
    for f in random.Random(seed).sample(live, random_n):
        chosen.append((f, "random"))
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", choices=("dev", "heldout"), default="heldout")
    ap.add_argument("--strong", type=int, default=16, help="Features that fire strongly on the prompts.")
    ap.add_argument("--random", type=int, default=8, help="Live features drawn at random.")
    ap.add_argument("--n-prompts", type=int, default=3, help="How many of the set's prompts to use.")
    ap.add_argument("--tokens", type=int, default=30, help="Greedy tokens per reply.")
    ap.add_argument("--active", type=float, default=0.3, help="Takeover: activation (q units) counted as active.")
    ap.add_argument("--takeover-frac", type=float, default=0.5, help="Takeover: share of reply tokens active.")
    ap.add_argument("--promoted-frac", type=float, default=0.3, help="Takeover: share of tokens that are promoted.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", default=None, help="Comma-separated feature indices instead of the sample.")
    ap.add_argument("--extra", default=None, help="Comma-separated features added to the sample (kind 'named').")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    from steerlab.analysis.autosteer import residual_norm
    from steerlab.analysis.autosteer_generate import Row, generate_rows
    from steerlab.features.identity import open_feature_database
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for
    from steerlab.steering.edits import FeatureEdit
    from steerlab.steering.plan import edits_controller

    started = time.perf_counter()
    lm = load_model("default")
    sae = load_sae_for(lm)
    store = open_feature_database(lm.name)
    texts = list(DEV_PROMPTS if args.prompts == "dev" else HELDOUT_PROMPTS)[: args.n_prompts]
    messages = [[{"role": "user", "content": t}] for t in texts]
    resid = residual_norm(lm, sae, messages)
    if args.features:
        features = [(int(f), "given") for f in args.features.split(",")]
    else:
        features = pick_features(lm, sae, texts, args.strong, args.random, args.seed)
    if args.extra:
        features += [(int(f), "named") for f in args.extra.split(",") if int(f) not in {g for g, _ in features}]
    fs = sae.feature_scale.detach().float().cpu()
    dec = sae.W_dec.detach().float().norm(dim=1).cpu()
    unit = _current_unit(sae)
    labels = _labels(store.path, [f for f, _ in features]) if store is not None else {}
    density = _densities(store.path, [f for f, _ in features]) if store is not None else {}

    lm_head = lm.model.get_output_embeddings()
    base = generate_rows(lm, sae, [Row(m) for m in messages], max_new_tokens=args.tokens)
    prompt_ids = [r.prompt_ids for r in base]
    base_codes = _read_back(lm, sae, [r.token_ids for r in base], prompt_ids)

    rows_out, kept_replies = [], {}
    for n, (f, kind) in enumerate(features):
        to_unit = float(fs[f]) / float(unit[f])  # q -> current unit
        push = float(fs[f]) * float(dec[f]) / resid  # residual push per q unit
        grid_q = [round(p / push, 4) for p in GRID_PUSH]
        promoted = set(lm_head(sae.W_dec[f].detach().to(lm_head.weight.dtype)).topk(PROMOTED).indices.tolist())
        rows = [
            Row(m, edits_controller([FeatureEdit(f, q * to_unit)]))
            for q in grid_q
            for m in messages  # grid-major: row k * P + p
        ]
        replies = generate_rows(lm, sae, rows, max_new_tokens=args.tokens)
        codes = _read_back(lm, sae, [r.token_ids for r in replies], [r.prompt_ids for r in replies])
        per_prompt = []
        for p in range(len(messages)):
            base_frac = _frac(base_codes[p], f, args.active)
            base_top = _share(base[p].token_ids, promoted)
            change = visible = takeover = wrecked = None
            fracs, tops = [], []
            for k, q in enumerate(grid_q):
                r, c = replies[k * len(messages) + p], codes[k * len(messages) + p]
                frac, top = _frac(c, f, args.active), _share(r.token_ids, promoted)
                fracs.append(round(frac, 2))
                tops.append(round(top, 2))
                if change is None and r.token_ids != base[p].token_ids:
                    change = q
                if visible is None and _first_diff(r.token_ids, base[p].token_ids) < args.tokens // 2:
                    visible = q
                if takeover is None and _takeover(frac, base_frac, top, base_top, args):
                    takeover = q
                    kept_replies[(f, p)] = (c, r.token_ids, p)
                if wrecked is None and len(r.token_ids) >= 10 and _distinct(r.token_ids) < 0.3:
                    wrecked = q
            text_at = {str(GRID_PUSH[k]): replies[k * len(messages) + p].text for k in (5, 8, 11)}
            per_prompt.append(
                {"prompt": p, "change_q": change, "visible_q": visible, "takeover_q": takeover, "wrecked_q": wrecked}
                | {"active_share": fracs, "promoted_share": tops, "text_at_push": text_at}
            )

        def summary(key: str, rows: list[dict] = per_prompt) -> float | None:
            return _median([r[key] for r in rows if r[key] is not None]) if any(r[key] for r in rows) else None

        row = {
            "feature": f,
            "kind": kind,
            "label": labels.get(f, ""),
            "feature_scale": round(float(fs[f]), 4),
            "decoder_norm": round(float(dec[f]), 4),
            "density": density.get(f),
            "push_per_q": round(push, 5),
            "current_unit_in_q": round(float(unit[f]) / float(fs[f]), 4),
            "change_q": summary("change_q"),
            "visible_q": summary("visible_q"),
            "takeover_q": summary("takeover_q"),
            "wrecked_q": summary("wrecked_q"),
            "takeover_prompts": sum(r["takeover_q"] is not None for r in per_prompt),
            "per_prompt": per_prompt,
        }
        for key in ("change", "visible", "takeover", "wrecked"):
            q = row[f"{key}_q"]
            row[f"{key}_push"] = None if q is None else round(q * push, 4)
            row[f"{key}_unit"] = None if q is None else round(q * float(fs[f]) / float(unit[f]), 3)
        rows_out.append(row)
        print(
            f"[{n + 1}/{len(features)}] #{f} {kind} fs={fs[f]:.2f} |d|={dec[f]:.2f} change_q={row['change_q']} "
            f"visible_q={row['visible_q']} takeover_q={row['takeover_q']} wrecked_q={row['wrecked_q']} "
            f"({row['takeover_prompts']}/{len(messages)} prompts) {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
            flush=True,
        )

    # The takeover check must reject what is not a takeover.
    keys = sorted(kept_replies)
    cross_pass = cross_n = 0
    rng = random.Random(args.seed)
    for f, p in keys:
        codes_fp, ids_fp, _ = kept_replies[(f, p)]
        others = [g for g, _ in features if g != f]
        for g in rng.sample(others, min(3, len(others))):
            cross_n += 1
            promoted_g = set(lm_head(sae.W_dec[g].detach().to(lm_head.weight.dtype)).topk(PROMOTED).indices.tolist())
            cross_pass += _takeover(
                _frac(codes_fp, g, args.active),
                _frac(base_codes[p], g, args.active),
                _share(ids_fp, promoted_g),
                _share(base[p].token_ids, promoted_g),
                args,
            )
    base_abs = sum(
        _frac(base_codes[p], f, args.active) >= args.takeover_frac for f, _ in features for p in range(len(messages))
    )

    def spread(key: str, subset: list[dict]) -> dict:
        vals = [r[key] for r in subset if r[key] is not None]
        return {"n": len(vals), "median": _median(vals), "gsd": _gsd(vals)}

    groups = {"all": rows_out}
    for kind in ("strong", "random", "named"):
        groups[kind] = [r for r in rows_out if r["kind"] == kind]
    report = {
        "prompts": args.prompts,
        "prompt_texts": texts,
        "tokens": args.tokens,
        "grid_push": GRID_PUSH,
        "residual_median_norm": round(resid, 3),
        "takeover_rule": f"reply read back unsteered: feature active (>= {args.active} q) on >= {args.takeover_frac} "
        f"of its tokens and >= 0.3 more than the unsteered reply; or >= {args.promoted_frac} of its tokens among the "
        f"feature's {PROMOTED} top logit-lens tokens and >= 0.25 more than the unsteered reply",
        "visible_rule": f"the reply differs from the unsteered one within its first {args.tokens // 2} tokens",
        "takeover_check_rejects": {
            "unsteered_replies_absolute_pass": f"{base_abs}/{len(features) * len(messages)}",
            "takeover_reply_scored_for_another_feature_pass": f"{cross_pass}/{cross_n}",
        },
        "summary": {
            g: {
                f"{key}_{u}": spread(f"{key}_{u}", rows)
                for key in ("change", "visible", "takeover", "wrecked")
                for u in ("q", "push", "unit")
            }
            | {"takeover_reached": f"{sum(r['takeover_q'] is not None for r in rows)}/{len(rows)}"}
            for g, rows in groups.items()
        },
        "features": rows_out,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
