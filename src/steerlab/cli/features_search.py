"""``steerlab features label`` and ``steerlab features search``: name every feature, then find them.

Registered on the ``features`` app of ``cli/features.py`` (same ``--db`` / ``--sae`` / ``--sae-id``
options and error handling as ``show`` and ``export``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.features import DB, SAE_ID, SAE_PATH, app, open_feature_db, resolve_db
from steerlab.cli.options import RAY
from steerlab.errors import InvalidInputError, MissingFileError


def open_store(db: Path | None, sae: Path | None, sae_id: str | None, readonly: bool):
    """(store, sae_id); a missing database file is a one-line error naming --db, never an empty new file."""
    path = resolve_db(db, sae)
    if not path.is_file():
        raise MissingFileError(
            f"no feature database at {path} (build one with 'steerlab features build')", field="--db"
        )
    return open_feature_db(db, sae, sae_id, readonly=readonly)


@app.command("label")
@one_line_errors
def label(
    db: Path | None = DB,
    sae: Path | None = SAE_PATH,
    sae_id: str | None = SAE_ID,
    backend: str = typer.Option(
        "offline",
        "--backend",
        help="offline (no network) or openai (any OpenAI-compatible "
        "endpoint from STEERLAB_EXPLAINER_BASE_URL / _MODEL / _API_KEY).",
    ),
    scorer: str | None = typer.Option(
        None,
        "--scorer",
        help="heldout (offline AUC on held-out contexts; a label that does not beat random concept phrases is "
        "replaced by what fires), embedding (offline AUC, labels kept), detection (LLM) or none; default: heldout "
        "for offline, detection for openai.",
    ),
    contexts: str = typer.Option(
        "sentence",
        "--contexts",
        help="Offline explainer and embedding scorer: embed "
        "contexts as sentences (better) or as bags of token embeddings ('tokens': ~500x "
        "cheaper on a CPU, labels a 9k-feature SAE in minutes).",
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, max=256, help="LLM requests in flight (openai backend)."
    ),
    explainer_name: str = typer.Option(
        "evidence",
        "--explainer",
        help="Offline backend: evidence (candidates from contexts, keywords, WordNet, tokens, logit effects and "
        "language, chosen by AUC; docs/labels.md) or concepts (the earlier phrase-list explainer).",
    ),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Label at most this many features this run."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, max=4096, help="Features per write."),
    relabel: bool = typer.Option(False, "--relabel", help="Label already-labeled features again."),
    rescore: bool = typer.Option(False, "--rescore", help="Only re-score existing labels (no new labels)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    ray: str | None = RAY,
) -> None:
    """Label every feature, score the labels, print the score distribution (resumable: skips labeled features
    unless --relabel; on a fully labeled database it only prints the distribution)."""
    from steerlab.features.explain.run import background_examples, label_features

    if backend not in ("offline", "openai"):
        raise InvalidInputError(f"unknown {backend!r}", field="--backend", allowed="offline, openai")
    scorer = scorer or ("heldout" if backend == "offline" else "detection")
    if scorer not in ("heldout", "embedding", "detection", "none"):
        raise InvalidInputError(f"unknown {scorer!r}", field="--scorer", allowed="heldout, embedding, detection, none")
    if explainer_name not in ("evidence", "concepts"):
        raise InvalidInputError(f"unknown {explainer_name!r}", field="--explainer", allowed="evidence, concepts")
    if contexts not in ("sentence", "tokens"):
        raise InvalidInputError(f"unknown {contexts!r}", field="--contexts", allowed="sentence, tokens")
    if relabel and rescore:
        raise InvalidInputError("--relabel and --rescore exclude each other")
    if rescore and scorer == "none":
        raise InvalidInputError("needs a scorer: --scorer embedding or detection", field="--rescore")
    if ray is not None:
        from steerlab.cluster.connect import check_address

        check_address(ray)  # a bad address fails before the model loads
    store, sae_id = open_store(db, sae, sae_id, readonly=False)
    with store:
        d_sae = store.get_sae(sae_id).d_sae
        needs_background = scorer in ("embedding", "heldout") or backend == "offline"
        background = background_examples(store, sae_id, d_sae) if needs_background else []
        labeler = None
        if ray is None:
            explainer, score_with = _backends(backend, scorer, concurrency, background, contexts, explainer_name)
        else:  # the backends are built on each worker; here only the store is read and written
            from functools import partial

            from steerlab.cluster.connect import connect
            from steerlab.cluster.jobs import RayLabeler

            connect(ray)
            make = partial(_backends, backend, scorer, concurrency, background, contexts, explainer_name)
            labeler = RayLabeler(make, existing=store.labels(sae_id) if rescore else None)
            explainer, score_with = None, None
        result = label_features(
            store,
            sae_id,
            None if rescore else explainer,
            score_with,
            relabel=relabel,
            rescore=rescore,
            limit=limit,
            batch_size=batch_size,
            progress=not as_json,
            labeler=labeler,
        )
        if ray is not None:
            from steerlab.cluster.connect import disconnect

            disconnect()
    summary = {
        "sae": sae_id,
        "attempted": result.attempted,
        "labeled": result.labeled,
        "failed": result.failed,
        "scored": result.scored,
        "report": result.report,
    }
    if as_json:
        print(json.dumps(summary))
        return
    from steerlab.features.score import format_report

    print(
        f"{sae_id}: labeled {result.labeled} of {result.attempted} attempted ({result.failed} left unlabeled), "
        f"scored {result.scored}"
    )
    print(format_report(result.report))


def _backends(
    backend: str,
    scorer: str,
    concurrency: int | None,
    background,
    contexts: str = "sentence",
    offline: str = "evidence",
):
    """(explainer, scorer) objects; the LLM config is read only when an LLM is used."""
    from steerlab.features.embeddings import EmbeddingCache

    cache = EmbeddingCache()
    llm = None
    if backend == "openai" or scorer == "detection":
        from steerlab.features.explain import LLMConfig

        llm = LLMConfig.from_settings(concurrency=concurrency)
    if backend == "openai":
        from steerlab.features.explain import OpenAIExplainer

        explainer = OpenAIExplainer(llm)
    else:
        from steerlab.features.explain import OfflineConfig, OfflineExplainer
        from steerlab.features.explain.concepts import ConceptVocabulary
        from steerlab.settings import get_settings

        if offline == "evidence":
            from steerlab.features.explain.evidence import EvidenceExplainer

            explainer = EvidenceExplainer(
                config=OfflineConfig(contexts=contexts),
                encode=cache,
                background=background,
                cache_dir=get_settings().home / "cache",
            )
        else:
            vocabulary = ConceptVocabulary.load(cache_dir=get_settings().home / "cache")
            explainer = OfflineExplainer(
                vocabulary=vocabulary, config=OfflineConfig(contexts=contexts), encode=cache, background=background
            )
    if scorer == "embedding":
        from steerlab.features.score import EmbeddingScorer

        return explainer, EmbeddingScorer(encode=cache, background=background, contexts=contexts)
    if scorer == "heldout":
        from steerlab.features.score_heldout import HeldOutScorer

        return explainer, HeldOutScorer(encode=cache, contexts=contexts)
    if scorer == "detection":
        from steerlab.features.score_detection import DetectionScorer

        return explainer, DetectionScorer(llm)
    return explainer, None


@app.command("search")
@one_line_errors
def search(
    query: str | None = typer.Argument(
        None, help="What to look for, e.g. 'French text' or 'refusals' (optional with --example-text/--example-file)."
    ),
    db: Path | None = DB,
    sae: Path | None = SAE_PATH,
    sae_id: str | None = SAE_ID,
    mode: str = typer.Option(
        "hybrid",
        "--mode",
        help="How labels match: semantic (label embeddings), lexical (full-text) or hybrid (both fused).",
    ),
    by: str | None = typer.Option(
        None,
        "--by",
        help="What the search rests on: label, contexts (what each feature's strongest windows are about; "
        "computed once a machine, minutes on a CPU) or hybrid (labels propose, contexts decide among them). "
        "Default: hybrid when the database's context vectors are at hand (stored or cached), else label.",
    ),
    example_text: str | None = typer.Option(
        None,
        "--example-text",
        help="Search by example: the features this text wakes more than they usually are (loads the model).",
    ),
    example_file: Path | None = typer.Option(
        None, "--example-file", help="Like --example-text, the text read from a UTF-8 file."
    ),
    model: str = typer.Option("default", "--model", help="Model to run an example text through."),
    top_k: int = typer.Option(10, "--top-k", help="Number of results, 1-1000."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of hits, best first."),
) -> None:
    """Search features by label (meaning or words), by what their contexts are about, or by an example text;
    each hit says why it was returned."""
    from steerlab.features.search import BY, FeatureSearch, check_example_text, check_query, check_top_k

    if query is None and example_text is None and example_file is None:
        raise InvalidInputError("give a query, --example-text or --example-file", field="query")
    if example_text is not None and example_file is not None:
        raise InvalidInputError("give --example-text or --example-file, not both", field="--example-file")
    if query is not None:
        check_query(query)
    check_top_k(top_k)
    if mode not in ("semantic", "lexical", "hybrid"):
        raise InvalidInputError(f"unknown {mode!r}", field="--mode", allowed="semantic, lexical, hybrid")
    if by is not None and by not in BY:
        raise InvalidInputError(f"unknown {by!r}", field="--by", allowed=", ".join(BY))
    if example_file is not None:
        example_text = _read_example(example_file)
    if example_text is not None:
        check_example_text(example_text)
        hits = _search_by_example(query, example_text, db, sae, model, by, mode, top_k)
        title = f"search by example{f' and {query!r}' if query else ''}"
    else:
        store, sae_id = open_store(db, sae, sae_id, readonly=True)
        with store:
            finder = FeatureSearch(store, sae_id)
            by = finder.resolve_by(by)
            if by != "label" and not finder.contexts_at_hand():
                print("computing each feature's context vectors (once for this database)...", file=sys.stderr)
                finder.context_vectors(progress=_progress)
            hits = finder.search(query, top_k=top_k, mode=mode, by=by)
        title = (
            f"search for {query!r} by {'label+contexts' if by == 'hybrid' else by} ({mode} label matching) in {sae_id}"
        )
    if as_json:
        print(json.dumps([hit.model_dump() for hit in hits]))
        return
    if not hits:
        print(f"no features match {query!r}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = (("index", "right"), ("score", "right"), ("label", "left"), ("label score", "right"), ("why", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for hit in hits:
        quality = "" if hit.label_score is None else f"{hit.label_score:.2f}"
        why = hit.reason or ""
        if hit.snippet:
            why += f": {hit.snippet}"
        table.add_row(str(hit.index), f"{hit.score:.3f}", hit.label, quality, why)
    Console().print(table)


def _read_example(path: Path) -> str:
    """The file's text; undecodable bytes become U+FFFD, which the binary check then counts."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        raise MissingFileError(f"cannot read {path}: {err.strerror}", field="--example-file") from None


def _progress(done: int, total: int) -> None:
    print(f"  {done}/{total} windows embedded", file=sys.stderr)


def _search_by_example(query, text, db, sae, model, by, mode, top_k):
    from steerlab.engine.lab import Lab

    lab = Lab.load(model, sae, db, max_batch=1)
    try:
        if (
            query is not None
            and by not in (None, "label")
            and lab.search is not None
            and not lab.search.contexts_at_hand()
        ):
            print("computing each feature's context vectors (once for this database)...", file=sys.stderr)
            lab.search.context_vectors(progress=_progress)
        return lab.find_features(query, text, by=by, mode=mode, top_k=top_k)
    finally:
        lab.close()
