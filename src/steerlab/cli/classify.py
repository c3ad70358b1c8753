"""``steerlab classify``: train, score, list and show interpretable classifiers on SAE features."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE
from steerlab.errors import InvalidInputError

app = typer.Typer(
    help="Interpretable classifiers on SAE features (shipped: 'jailbreak', a raw probe, and 'jailbreak-sae').",
    no_args_is_help=True,
)


def _lab(model: str, sae: str | None, dtype: str | None, device: str | None):
    from steerlab.engine.lab import Lab

    return Lab.load(model, sae, dtype=dtype, device=device, max_batch=1)


@app.command("train")
@one_line_errors
def train_cmd(
    name: str = typer.Argument(..., help="Name to save it under (refused if it exists, unless --overwrite)."),
    pos: Path | None = typer.Option(
        None, "--pos", help="Positive texts: one per line, or .jsonl (text/prompt/messages)."
    ),
    neg: Path | None = typer.Option(None, "--neg", help="Negative texts, same formats."),
    task: str | None = typer.Option(None, "--task", help="A built-in task instead of files: jailbreak or harmful."),
    kind: str = typer.Option(
        "best",
        "--kind",
        help="sae, raw, text, or best (highest mean AUROC with each training source left out in turn; "
        "validation AUROC when each class has one source).",
    ),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Tokens read per text; longer texts are cut."),
    max_features: int = typer.Option(32, "--max-features", help="Most SAE features a sparse classifier keeps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a classifier of the same name."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default: under STEERLAB_HOME)."),
    as_json: bool = typer.Option(False, "--json", help="Print the training report as JSON."),
    model: str = MODEL,
    sae: str | None = SAE,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
):
    """Train on labelled texts; the SAE-feature classifier, a raw residual probe and TF-IDF are compared."""
    from steerlab.classifiers.data import labelled, read_texts
    from steerlab.classifiers.storage import check_name, user_root

    check_name(name)
    heldout = None
    if task is not None:
        if pos is not None or neg is not None:
            raise InvalidInputError("give either --task or --pos/--neg, not both", field="task")
        from steerlab.classifiers.tasks import build_task

        built = build_task(task)
        examples, heldout = built.train, built.heldout
    else:
        if pos is None or neg is None:
            raise InvalidInputError(
                "both --pos and --neg are needed (or --task)", field="pos" if pos is None else "neg"
            )
        examples = labelled(read_texts(pos, "pos"), read_texts(neg, "neg"), pos.name, neg.name)
    lab = _lab(model, sae, dtype, device)
    try:
        assert lab.sae_id is not None
        folder = out if out is not None else user_root(lab.sae_id) / name
        clf = lab.train_classifier(
            name,
            examples=examples,
            kind=kind,
            max_tokens=max_tokens,
            max_features=max_features,
            overwrite=overwrite,
            heldout=heldout,
            folder=folder,
            progress=lambda msg: print(msg, file=sys.stderr),
        )
    finally:
        lab.close()
    if as_json:
        print(json.dumps({"name": name, "path": str(folder), **clf.report}, indent=1))
        return
    print(f"saved {name} ({clf.kind}, {clf.pool} pooling) to {folder}")
    for k, r in clf.report["kinds"].items():
        t = r["test"]
        held = r.get("heldout", {}).get("source")
        extra = f"  held-out source AUROC {held['auroc']:.3f}" if held and held["auroc"] is not None else ""
        print(
            f"  {k:4s} val AUROC {r['val_auroc'] or 0:.3f}  test AUROC {t['auroc'] or 0:.3f} F1 {t['f1']:.3f} "
            f"ECE {t['ece']:.3f}{extra}"
        )


@app.command("score")
@one_line_errors
def score_cmd(
    name: str = typer.Argument(..., help="Classifier name (see 'steerlab classify list')."),
    text_file: Path | None = typer.Option(None, "--text-file", help="Texts to score, one per line (or .jsonl)."),
    text: list[str] = typer.Option([], "--text", help="A text to score (repeatable)."),
    top: int = typer.Option(5, "--top", help="Features reported per text."),
    as_json: bool = typer.Option(False, "--json", help="A JSON list, one object per text."),
    model: str = MODEL,
    sae: str | None = SAE,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
):
    """Score texts: the probability of the positive class and the features that moved it."""
    from steerlab.classifiers.data import read_texts

    texts = list(text) + (read_texts(text_file, "text_file") if text_file is not None else [])
    if not texts:
        raise InvalidInputError("nothing to score: give --text-file or --text", field="text_file")
    if top < 0:
        raise InvalidInputError(f"must be >= 0, got {top}", field="top")
    lab = _lab(model, sae, dtype, device)
    try:
        results = lab.classify(name, texts, top=top)
    finally:
        lab.close()
    if as_json:
        print(json.dumps(results, indent=1))
        return
    for t, r in zip(texts, results):
        feats = ", ".join(f"{f['index']} {f['label'][:30]!r} {f['contribution']:+.2f}" for f in r["features"][:3])
        mark = "FLAG" if r["flagged"] else "    "
        print(f"{r['score']:.3f} {mark} {t[:60]!r}  [{feats}]")


@app.command("list")
@one_line_errors
def list_cmd(model: str = MODEL, sae: str | None = SAE, as_json: bool = typer.Option(False, "--json")):
    """Classifiers trained on this model's SAE (yours, then those shipped with it)."""
    from steerlab.classifiers.storage import list_names

    lab = _lab(model, sae, None, None)
    try:
        names = list_names(lab)
    finally:
        lab.close()
    if as_json:
        print(json.dumps(names, indent=1))
        return
    for n in names:
        print(f"{n['name']:20s} {n['kind']:4s} {n['pool']:5s} {n['path']}")


@app.command("show")
@one_line_errors
def show_cmd(
    name: str = typer.Argument(...),
    top: int = typer.Option(20, "--top", help="Weights shown."),
    as_json: bool = typer.Option(False, "--json"),
    model: str = MODEL,
    sae: str | None = SAE,
):
    """What a classifier reads: its kind, pooling, threshold, largest weights with labels, and its figures."""
    lab = _lab(model, sae, None, None)
    try:
        summary = lab.classifier(name).summary(lab, top=top)
    finally:
        lab.close()
    if as_json:
        print(json.dumps(summary, indent=1))
        return
    print(
        f"{summary['name']}: {summary['kind']} on {summary['hookpoint']} ({summary['pool']} pooling), "
        f"threshold {summary['threshold']:.3f}, {summary['n_features']} "
        + ("residual dimensions" if summary["kind"] == "raw" else "features")
    )
    what = {"sae": "feature", "raw": "feature (through the SAE's decoder)", "text": "n-gram"}[summary["kind"]]
    print(f"  {'weight':>8s}  {'index':>6s}  {what}")
    for w in summary["weights"]:
        print(f"  {w['weight']:+8.3f}  {w['index']:6d}  {w['label'] or '(unlabeled)'}")
    kinds = summary["report"].get("kinds", {})
    for k, r in kinds.items():
        test = r.get("test", {})
        auroc = test.get("auroc")
        mark = "*" if k == summary["kind"] else " "
        heldout = r.get("heldout", {}).items()
        held = ", ".join(f"held-out {s} AUROC {h['auroc']:.3f}" for s, h in heldout if h.get("auroc") is not None)
        out = (r.get("source_out") or {}).get("mean_auroc")
        out_s = f"  source-out AUROC {out:.3f}" if out is not None else ""
        print(f" {mark}{k:4s} test AUROC {auroc if auroc is not None else float('nan'):.3f}{out_s}  {held}".rstrip())
    if summary["report"].get("selected_by"):
        print(f"  kind chosen by: {summary['report']['selected_by']}")
