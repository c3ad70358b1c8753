"""``steerlab features``: build the feature database of an SAE, and look at its features.

The database lives next to the SAE (``features.db`` in its folder) unless ``--db`` says otherwise;
reading commands open it read-only, so a database shipped inside the package works as is.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, RAY, check_input_file
from steerlab.errors import InvalidInputError

app = typer.Typer(help="Build, show, export and search the labeled features of an SAE.", no_args_is_help=True)

DB = typer.Option(None, "--db", help="Feature database file (default: features.db in the SAE's folder).")
SAE_PATH = typer.Option(None, "--sae", help="SAE folder (default: the bundled SAE of the default model).")
SAE_ID = typer.Option(None, "--sae-id", help="Which SAE in the database, when it holds several.")


def resolve_db(db: Path | None, sae: Path | None) -> Path:
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.features.identity import default_db_path

    if db is not None:
        return db
    folder = sae or bundled_sae_path("default")
    if folder is None:
        raise InvalidInputError("no SAE is bundled; pass --sae PATH or --db PATH")
    return default_db_path(folder)


def open_feature_db(db: Path | None, sae: Path | None, sae_id: str | None, readonly: bool = True):
    """(store, sae_id) for the reading commands and for ``label``/``search`` (``features_search.py``)."""
    from steerlab.features.identity import pick_sae_id
    from steerlab.features.store import FeatureStore

    store = FeatureStore(resolve_db(db, sae), readonly=readonly)
    try:
        loaded = None
        if sae_id is None and sae is not None and len(store.list_saes()) > 1:
            from steerlab.sae.base import SAE as SAEModel

            loaded = SAEModel.load(sae)
        return store, pick_sae_id(store, sae_id, loaded)
    except BaseException:
        store.close()
        raise


def parse_indices(text: str) -> list[int]:
    """``"3,7,10-12"`` -> [3, 7, 10, 11, 12]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InvalidInputError(f"expected numbers or ranges like 3,7,10-12, got {part!r}", field="--indices")
        out += list(range(int(low), int(high) + 1)) if dash else [int(low)]
    return out


def _labels_of(store, sae_id: str, indices: list[int]) -> dict[int, str]:
    return {f.index: f.label_text for f in store.get_features(sae_id, indices) if f.label is not None}


@app.command("build")
@one_line_errors
def build(
    sae: Path | None = SAE_PATH,
    acts: list[Path] = typer.Option(
        [],
        "--acts",
        help="Harvest folder (or one shard file in it) from 'steerlab "
        "harvest' at the SAE's hookpoint; repeatable. No model forward is needed.",
    ),
    text_file: Path | None = typer.Option(
        None,
        "--text-file",
        help=".txt, or .jsonl/.parquet with 'text' or 'messages': run through the model up to the hookpoint.",
    ),
    corpus: list[str] = typer.Option(
        [], "--corpus", help="PATH[=MAX_TOKENS] of a .jsonl/.parquet corpus, or hf:NAME[:CONFIG]; repeatable."
    ),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Scan at most this many tokens."),
    db: Path | None = DB,
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue an interrupted build from its checkpoint (<db>.build/)."
    ),
    context_length: int = typer.Option(256, "--context-length", help="Tokens per sequence (corpus input)."),
    batch_tokens: int = typer.Option(4096, "--batch-tokens", help="Tokens per SAE batch."),
    top_examples: int = typer.Option(12, "--top-examples", help="Top-activating contexts kept per feature."),
    compact: bool = typer.Option(False, "--compact", help="VACUUM and leave WAL mode afterwards (for shipping)."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Model for corpus input, logit effects and token strings (default: the harvest's model, else the SAE's).",
    ),
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
    ray: str | None = RAY,
) -> None:
    """Scan activations through the SAE and store every feature's statistics, examples, logit effects and
    co-firing features. Resumable: rerun the same command after an interruption. With --ray the batches are
    encoded on the cluster in shards (checkpointed after each) and folded here in order."""
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.features.build import build_feature_db
    from steerlab.features.build_sources import CorpusActivations, HarvestActivations
    from steerlab.features.build_state import BuildConfig
    from steerlab.features.logit_effects import unembedding, vocabulary
    from steerlab.features.store import FeatureStore
    from steerlab.models.loader import load_model
    from steerlab.models.registry import canonical_name
    from steerlab.sae.base import SAE as SAEModel
    from steerlab.sae.bundled import load_sae_for

    if sum(map(bool, (acts, text_file, corpus))) != 1:
        raise InvalidInputError("give exactly one input: --acts HARVEST_DIR, --text-file FILE or --corpus FILE")
    if max_tokens is not None and max_tokens < 1:
        raise InvalidInputError(f"must be >= 1, got {max_tokens}", field="--max-tokens")
    if text_file is not None:
        check_input_file(text_file, "--text-file")  # before the model's seconds of loading
    if ray is not None:
        from steerlab.cluster.connect import check_address

        check_address(ray)  # a bad address fails before the model loads
    cfg = BuildConfig(top_examples=top_examples, batch_tokens=batch_tokens)
    sae_path = sae or bundled_sae_path("default")
    if sae_path is None:
        raise InvalidInputError("no SAE is bundled; pass --sae PATH")
    harvest = HarvestActivations(acts, batch_tokens=batch_tokens, max_tokens=max_tokens) if acts else None
    if harvest is not None and model is not None and canonical_name(model) != canonical_name(harvest.model_name):
        raise InvalidInputError(
            f"the activations in {acts[0]} come from model {harvest.model_name!r}, not {model!r}", field="--model"
        )
    model_name = model or (harvest.model_name if harvest else None) or SAEModel.load(sae_path).cfg.model_name
    lm = load_model(model_name or "default", dtype=dtype, device=device)
    sae_model = load_sae_for(lm, sae_path)
    if harvest is not None:
        source = harvest
    else:
        source = CorpusActivations(
            lm,
            sae_model.cfg.hookpoint,
            _sequences(lm, text_file, corpus, context_length, max_tokens),
            batch_tokens=batch_tokens,
            max_tokens=max_tokens,
            description={"input": str(text_file) if text_file else corpus},
        )
    lm_dtype, lm_device = lm.dtype, lm.device
    w_u, norm = unembedding(lm.model)
    vocab = vocabulary(lm.tokenizer, max(w_u.shape[0], len(lm.tokenizer)))
    if harvest is not None:  # the model never runs: keep its unembedding, give the rest of it back
        w_u, norm = w_u.clone(), None if norm is None else norm.clone()
        del lm
    db_path = resolve_db(db, sae_path)
    encoded = None
    if ray is not None:
        from steerlab.cluster.connect import connect
        from steerlab.cluster.jobs import RayBuildEncoder

        connect(ray)
        encoded = RayBuildEncoder(sae_model, source, dtype=str(lm_dtype).removeprefix("torch."), device=str(lm_device))
        cfg.checkpoint_tokens = encoded.batches_per_shard * batch_tokens  # a checkpoint after every shard
    with _ray_session(ray), FeatureStore(db_path) as store:
        result = build_feature_db(
            sae_model,
            source,
            store,
            unembedding=(w_u, norm),
            vocab=vocab,
            work_dir=db_path.with_name(db_path.name + ".build"),
            cfg=cfg,
            resume=resume,
            sae_path=sae_path,
            encoded=encoded,
        )
        if compact:
            store.compact()
    print(
        json.dumps(
            {
                "db": str(db_path),
                "sae_id": result.sae_id,
                "tokens": result.tokens,
                "features": result.features,
                "dead_features": result.dead_features,
                "tokens_per_second": round(result.tokens_per_second, 1),
                "scan_seconds": round(result.scan_seconds, 1),
                "write_seconds": round(result.write_seconds, 1),
                "db_bytes": db_path.stat().st_size,
            }
        )
    )


def _ray_session(address: str | None):
    """Leaves the Ray cluster (or stops a private one) when the command ends, however it ends."""
    from contextlib import contextmanager

    @contextmanager
    def session():
        try:
            yield
        finally:
            if address is not None:
                from steerlab.cluster.connect import disconnect

                disconnect()

    return session()


def _sequences(lm, text_file: Path | None, corpus: list[str], context_length: int, max_tokens: int | None):
    from steerlab.activations.corpus import CorpusSource, CorpusSpec, build_sequences
    from steerlab.sae.evals import sequences_from_text_file

    if text_file is not None:
        return sequences_from_text_file(text_file, lm.tokenizer, context_length, max_tokens)
    sources = []
    for item in corpus:
        path, _, budget = item.partition("=")
        if budget and not budget.isdigit():
            raise InvalidInputError(f"{item!r}: the budget after '=' must be a number of tokens", field="--corpus")
        sources.append(CorpusSource(path=path, max_tokens=int(budget) if budget else max_tokens))
    return build_sequences(CorpusSpec(sources=sources, context_length=context_length), lm.tokenizer)


@app.command("show")
@one_line_errors
def show(
    index: int = typer.Argument(..., help="Feature index."),
    db: Path | None = DB,
    sae: Path | None = SAE_PATH,
    sae_id: str | None = SAE_ID,
    examples: int = typer.Option(5, "--examples", help="Examples per section."),
) -> None:
    """A terminal dashboard of one feature: label, stats, histogram, highlighted examples, logit effects."""
    from rich.console import Console

    from steerlab.features.dashboard_terminal import feature_page

    store, sae_id = open_feature_db(db, sae, sae_id)
    with store:
        feature = store.get_feature(sae_id, index)
        labels = _labels_of(store, sae_id, [i for i, _ in feature.cofiring])
    Console().print(feature_page(feature, labels, examples=examples))


@app.command("export")
@one_line_errors
def export(
    db: Path | None = DB,
    sae: Path | None = SAE_PATH,
    sae_id: str | None = SAE_ID,
    indices: str | None = typer.Option(None, "--indices", help="e.g. 3,7,10-12 (default: every feature)."),
    out: Path | None = typer.Option(None, "--out", help="JSON file (default: stdout)."),
    examples: bool = typer.Option(True, "--examples/--no-examples", help="Include the example contexts."),
) -> None:
    """Features as JSON: {"sae": {...}, "features": [...]}, streamed (bounded memory for any SAE size)."""
    store, sae_id = open_feature_db(db, sae, sae_id)
    with store:
        features = (
            store.get_features(sae_id, parse_indices(indices), with_examples=examples)
            if indices is not None
            else store.iter_features(sae_id, with_examples=examples)
        )
        if out is None:
            _write_json(sys.stdout, store.get_sae(sae_id), features)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                _write_json(fh, store.get_sae(sae_id), features)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    print(f"wrote {out}", file=sys.stderr)


def _write_json(fh, info, features) -> None:
    fh.write('{"sae": ' + info.model_dump_json() + ', "features": [')
    for n, feature in enumerate(features):
        fh.write((",\n" if n else "\n") + feature.model_dump_json())
    fh.write("\n]}\n")


@app.command("dashboard")
@one_line_errors
def dashboard(
    index: int = typer.Argument(..., help="Feature index."),
    out: Path = typer.Option(..., "--out", help="feature.html (self-contained) or feature.png."),
    db: Path | None = DB,
    sae: Path | None = SAE_PATH,
    sae_id: str | None = SAE_ID,
) -> None:
    """One feature as a file to look at: histogram and highlighted top examples."""
    from steerlab.features.dashboard import write_dashboard

    if out.suffix.lower() not in (".html", ".htm", ".png"):
        raise InvalidInputError(f"must end in .html or .png, got {out.name!r}", field="--out")
    store, sae_id = open_feature_db(db, sae, sae_id)
    with store:
        feature = store.get_feature(sae_id, index)
        labels = _labels_of(store, sae_id, [i for i, _ in feature.cofiring])
    print(f"wrote {write_dashboard(feature, out, labels)}")


# `label` and `search` live in features_search.py and register themselves on this app when imported:
from steerlab.cli import features_search  # noqa: E402,F401
