"""``create_app``: the FastAPI application (Ember routes, OpenAI routes, native routes, web UI).

Thin by design: routes validate, authorise and translate; the lab (model + SAE + feature store +
engine) does the work. Everything a route needs hangs off ``app.state``.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from steerlab import __version__
from steerlab.server.auth import Caller, require_caller
from steerlab.server.errors import install_error_handlers
from steerlab.server.keys import KeyStore
from steerlab.server.observability import Metrics, ObservabilityMiddleware
from steerlab.server.rate_limits import RateLimiter
from steerlab.server.routes import analysis, autosteer, chat, classifiers, features, finetune, ui, variants
from steerlab.server.variants import VariantStore
from steerlab.settings import Settings, get_settings

log = logging.getLogger("steerlab.server")


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Size the worker-thread pool of synchronous routes (anyio's default is 40): under load, dozens of
    inspections waiting their turn at the model held all 40 and searches queued behind them for seconds."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = app.state.settings.worker_threads
    yield


def create_app(settings: Settings | None = None, lab=None, organism=None) -> FastAPI:
    """Build the app. ``lab`` is injected by tests and ``steerlab serve``; routes that need a model
    answer 503 until one is attached. ``settings`` defaults to the process-wide ones. ``organism``
    (``agents.organism.Organism``): chat serves it as model ``organism``, its controller applied secretly."""
    settings = settings or get_settings()
    app = FastAPI(
        title="steerlab",
        version=__version__,
        description="Self-hosted interpretability lab: SAE features, search, inspection and "
        "steering. Speaks the Ember (goodfire SDK) and OpenAI protocols.",
        lifespan=_lifespan,
        docs_url=None,  # served below from packaged assets: FastAPI's own pages load them from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.keys = KeyStore(settings.resolved_db_path())
    app.state.rate_limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
    app.state.metrics = Metrics(engine=lambda: getattr(app.state.lab, "engine", None))
    app.state.variants = VariantStore(
        settings.resolved_db_path(), settings.max_variants_per_key, settings.max_variant_bytes_per_key
    )
    app.state.lab = lab
    app.state.organism = organism
    app.state.autosteer_gate = threading.BoundedSemaphore(settings.autosteer_concurrency)
    if settings.open_mode:
        log.warning(
            "OPEN MODE: no API key is required; anyone who can reach %s:%s can use this server",
            settings.host,
            settings.port,
        )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics, max_body_bytes=settings.max_body_bytes)

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        """Liveness and what is loaded (no key needed)."""
        lab = app.state.lab
        return {"status": "ok", "version": __version__, "model": getattr(lab, "model_name", None)}

    async def metrics_caller(request: Request) -> Caller | None:
        """A key like any route, unless ``public_metrics``: request counts per route and caller activity
        are not for anyone who can reach the port."""
        return None if app.state.settings.public_metrics else await require_caller(request)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics(_caller: Caller | None = Depends(metrics_caller)) -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _local_docs(app)

    @app.get("/v1/whoami", tags=["native"])
    def whoami(caller: Caller = Depends(require_caller)) -> dict:
        """The key the request authenticated with (to check a key works)."""
        return {"key_id": caller.key_id, "name": caller.name}

    app.include_router(chat.router)
    app.include_router(variants.router)
    app.include_router(features.router)
    app.include_router(analysis.router)
    app.include_router(autosteer.router)
    app.include_router(classifiers.router)
    app.include_router(finetune.router)
    # Web UI last: a mount at "/" matches every path, so it must come after all API routes.
    app.mount("/", ui.static_files(), name="ui")
    return app


DOCS_ASSETS = "/docs-assets"


def _local_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts and styles from the fastapi-offline package,
    served here: they work on a machine without internet, and no third party sees who reads them."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> Response:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
