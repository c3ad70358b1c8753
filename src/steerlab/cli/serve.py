"""``steerlab serve`` and ``steerlab keys``: run the shared server and manage who may use it."""

from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE
from steerlab.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from steerlab.settings import Settings

keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored hashed in the server database).", no_args_is_help=True
)
DB = typer.Option(None, "--server-db", help="Server database (env STEERLAB_DB_PATH, default $STEERLAB_HOME/server.db).")


@one_line_errors
def serve(
    model: str = MODEL,
    sae: Path | None = SAE,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
    host: str | None = typer.Option(
        None, "--host", help="Interface to listen on, 0.0.0.0 for everyone (env STEERLAB_HOST, default 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Env STEERLAB_PORT, default 8000."),
    open_mode: bool | None = typer.Option(
        None,
        "--open/--no-open",
        help="No API key needed. Only for a machine you alone use (env STEERLAB_OPEN_MODE, default off).",
    ),
    max_batch: int | None = typer.Option(
        None, "--max-batch", min=1, help="Sequences decoded together (env STEERLAB_MAX_BATCH, default 32)."
    ),
    server_db: Path | None = DB,
    db: Path | None = typer.Option(None, "--db", help="Feature database (default: features.db next to the SAE)."),
    public_metrics: bool | None = typer.Option(
        None,
        "--public-metrics/--no-public-metrics",
        help="Serve /metrics without an API key, e.g. for a Prometheus on this host "
        "(env STEERLAB_PUBLIC_METRICS, default off).",
    ),
    replicas: int | None = typer.Option(
        None,
        "--replicas",
        min=0,
        help="Decode on N engine replicas (Ray actors) behind this one API (env STEERLAB_REPLICAS, default 0: "
        "decode here). Without --ray they run on a private local Ray cluster.",
    ),
    ray: str | None = typer.Option(
        None, "--ray", help="HOST:PORT of the Ray head the replicas run on (env STEERLAB_RAY_ADDRESS; docs/cluster.md)."
    ),
    organism: Path | None = typer.Option(
        None,
        "--organism",
        help="Serve a model organism: chat answers as model 'organism' with this controller JSON applied "
        "to every reply, revealed by no response (docs/auditing.md).",
    ),
) -> None:
    """Serve the Ember API (goodfire SDK), the OpenAI API and the web UI at http://HOST:PORT/.

    Clients: goodfire.Client(api_key=KEY, base_url="http://HOST:PORT"); OpenAI(base_url="http://HOST:PORT/v1").
    Create a key first with 'steerlab keys create NAME' (or pass --open on your own machine).
    Every option not given here comes from its STEERLAB_* variable (docs/settings.md).
    """
    from steerlab.settings import load_settings, use_settings

    settings = load_settings(
        dtype=dtype,
        device=device,
        host=host,
        port=port,
        open_mode=open_mode,
        max_batch=max_batch,
        db_path=server_db,
        public_metrics=public_metrics,
        replicas=replicas,
        ray_address=ray,
    )
    if organism is not None:  # a bad file is refused before the model loads
        from steerlab.agents.organism import read_controller

        if settings.replicas or settings.ray_address:  # the planted editor lives in this process, not on replicas
            raise InvalidInputError(
                "--organism decodes in the server process and cannot be combined with --replicas or --ray",
                field="--organism",
            )

        read_controller(organism)
    run_server(use_settings(settings), model, sae, db, organism)


def run_server(settings: Settings, model: str, sae: Path | None, db: Path | None, organism: Path | None = None) -> None:
    """Load the lab as ``settings`` say and serve it until interrupted."""
    import uvicorn

    from steerlab.blas_threads import single_threaded_blas
    from steerlab.cluster.replicas import attach_replicas
    from steerlab.engine.lab import Lab
    from steerlab.server.app import create_app
    from steerlab.server.mcp_http import mount_mcp
    from steerlab.server.transport import header_timeout_protocol
    from steerlab.torch_threads import in_passing_thread

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    # Loaded in a passing thread, so the engine's thread is the one keeping OpenMP workers (torch_threads.py).
    lab = in_passing_thread(
        Lab.load,
        model,
        sae,
        db,
        dtype=settings.dtype,
        device=settings.device,
        max_batch=settings.max_batch,
        max_queue=settings.max_queue,
    )
    attach_replicas(lab, settings, model, sae)  # --replicas / --ray: decoding moves to Ray actors
    planted = None
    if organism is not None:
        from steerlab.agents.organism import Organism

        planted = Organism.load(lab, organism)
    single_threaded_blas()  # numpy products on request paths are tiny; the engine owns the cores
    if lab.search is not None:
        lab.search.warm()  # the query encoder and context vectors load before the first request, not in it
        _ = lab.corpus_stats  # what inspect and contrast rank by (features.specificity), also before the first
        _ = lab.topic_vectors  # and what they weigh it by (features.topic: label and context vectors)
    # ~0.5M objects outlive startup (model, tokenizer, labels): a full garbage collection walking them stalls
    # every request for ~0.26 s. Frozen, they are never walked again; what requests allocate still is.
    gc.collect()
    gc.freeze()
    logging.getLogger("steerlab.server").info(
        json.dumps({"event": "loaded", "model": lab.model_name, "seconds": round(time.perf_counter() - start, 1)})
    )
    try:
        uvicorn.run(
            mount_mcp(create_app(settings, lab, planted)),  # the agent tools at /mcp, behind the same keys
            host=settings.host,
            port=settings.port,
            log_level="warning",
            http=header_timeout_protocol(settings.header_timeout_s),
            # uvicorn counts the connection asking: its limit N admits N - 1 others. Plus one, so that
            # max_connections requests can be open and the next one gets the 503.
            limit_concurrency=settings.max_connections + 1,
        )
    finally:
        lab.close()


@keys_app.command("create")
@one_line_errors
def create_key(name: str = typer.Argument(..., help="Who or what the key is for."), server_db: Path | None = DB):
    """Create a key and print it once (only its hash is stored)."""
    from steerlab.server.keys import KeyStore
    from steerlab.settings import load_settings

    info, key = KeyStore(load_settings(db_path=server_db).resolved_db_path()).create(name)
    print(json.dumps({"key_id": info.key_id, "name": info.name, "api_key": key}))


@keys_app.command("list")
@one_line_errors
def list_keys(server_db: Path | None = DB):
    """List keys (id, name, prefix, created, revoked)."""
    from steerlab.server.keys import KeyStore
    from steerlab.settings import load_settings

    for k in KeyStore(load_settings(db_path=server_db).resolved_db_path(), create=False).list():
        print(json.dumps(k.__dict__))


@keys_app.command("revoke")
@one_line_errors
def revoke_key(
    key_id: str = typer.Argument(..., help="The key_id shown by 'create' or 'list'."), server_db: Path | None = DB
):
    """Revoke a key; requests with it fail from the next one on."""
    from steerlab.server.keys import KeyStore
    from steerlab.settings import load_settings

    if not KeyStore(load_settings(db_path=server_db).resolved_db_path(), create=False).revoke(key_id):
        raise NotFoundError(f"no active key with key_id {key_id!r}; see 'steerlab keys list'", field="key_id")
    print(json.dumps({"revoked": key_id}))
