"""The agent tools (``agents.mcp_server``) on the HTTP server: MCP's streamable HTTP transport at ``/mcp``,
behind the same API keys as every route.

Each POST is authenticated like a route (``require_caller``: 401 without a valid key, one request counted
against the key's requests/min) before the MCP SDK sees it. A tool call then runs with that key's tools:
its own research log (``research_logs/key-KEY_ID.jsonl``), its saved variants (the server's variant store,
within the key's quota), and a meter that checks the same per-request budgets as the equivalent routes and
reserves the tokens it will run from the key's tokens/min (AutoSteer takes one of the server's AutoSteer
slots, as ``/v1/autosteer`` does). So a key can do over MCP exactly what it can do over the REST API.

Stateless (``stateless_http``): every request stands alone, so no MCP session outlives its key or can be
reused by another caller; JSON responses (no server-sent streams to hold open).
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from steerlab.agents.tools import LabTools, Meter, ResearchLog
from steerlab.errors import BusyError, SteerlabError
from steerlab.server.auth import Caller, require_caller
from steerlab.server.deps import get_lab
from steerlab.server.errors import error_response
from steerlab.server.rate_limits import admitted_tokens

MCP_PATH = "/mcp"


@dataclass
class KeyMeter(Meter):
    """Charges a tool call to ``caller``'s quotas, the way the analysis and AutoSteer routes do."""

    app: FastAPI
    caller: Caller

    @contextmanager
    def admit(self, counts: dict[str, int], budget: str) -> Iterator[None]:
        state = self.app.state
        key, advice = self.caller.key_id, "send less or split the call"
        with admitted_tokens(state.rate_limiter, state.settings, key, counts, budget, "this tool call", advice):
            yield

    @contextmanager
    def job(self, kind: str) -> Iterator[None]:
        gate = self.app.state.autosteer_gate
        if not gate.acquire(blocking=False):
            raise BusyError(f"{kind} is busy with other requests (each takes tens of seconds here); retry soon", 30)
        try:
            yield
        finally:
            gate.release()


@dataclass
class KeyVariants:
    """The server's variant store, as the key that called (``POST /v1/variants``)."""

    app: FastAPI
    caller: Caller

    def save(self, name: str, model: str, controller: dict) -> dict:
        saved = self.app.state.variants.save(name, model, controller, self.caller.key_id)
        return {"variant_id": saved["variant_id"], "name": name}


class KeyTools:
    """Each key's ``LabTools`` (made on its first call, kept), sharing one corpus index per lab."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._tools: dict[str, LabTools] = {}
        self._corpus: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def __call__(self, ctx: Any) -> LabTools:
        request = ctx.request_context.request
        caller = getattr(request.state, "caller", None) if request is not None else None
        if caller is None:  # unreachable behind ``endpoint``; refuse rather than run as nobody
            raise BusyError("no caller for this tool call", 1)
        lab = get_lab(request)
        with self._lock:
            tools = self._tools.get(caller.key_id)
            if tools is None or tools.lab is not lab:
                from steerlab.agents.corpus import CorpusSearch

                if self._corpus is None or self._corpus[0] is not lab:
                    self._corpus = (lab, CorpusSearch(lab))
                session = "key-" + re.sub(r"[^A-Za-z0-9._-]", "_", caller.key_id)[:60]
                log = ResearchLog(self.app.state.settings.home / "research_logs", session)
                tools = LabTools(
                    lab,
                    log,
                    meter=KeyMeter(self.app, caller),
                    variants=KeyVariants(self.app, caller),
                    corpus=self._corpus[1],
                )
                self._tools[caller.key_id] = tools
        return tools


class KeyedEndpoint:
    """An ASGI app: ``require_caller`` (401/429 as any route), then the MCP transport."""

    def __init__(self, mcp_app: Any) -> None:
        self.mcp_app = mcp_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await require_caller(request)
        except SteerlabError as err:
            headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
            await error_response(err.status, str(err), err.field, err.code, headers)(scope, receive, send)
            return
        await self.mcp_app(scope, receive, send)


def mount_mcp(app: FastAPI) -> FastAPI:
    """Serve the agent tools at ``/mcp`` on ``app`` (before the web UI's catch-all mount); returns ``app``."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings

    from steerlab.agents.mcp_server import build_server

    server = build_server(KeyTools(app))
    # Every request carries an API key in a header (never a cookie), so DNS rebinding gains nothing; the
    # SDK's host check would refuse the server's own name when it listens on 0.0.0.0.
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    mcp_app = StreamableHTTPASGIApp(manager)

    app.router.routes.insert(0, Route(MCP_PATH, endpoint=KeyedEndpoint(mcp_app), methods=["GET", "POST", "DELETE"]))
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with outer(a) as state, manager.run():
            yield state

    app.router.lifespan_context = lifespan
    return app
