"""The dashboard's web server (aiohttp): the page, its JSON API and
``/metrics``.

Routes:
  ``/``                  the page (static/index.html, app.js, style.css)
  ``/api/snapshot``      everything the page shows, in one answer
  ``/api/KIND``          KIND in nodes, actors, objects, transfers, groups,
                         memory: what ``ferry list KIND --format json`` (or
                         ``ferry memory --format json``) prints
  ``/metrics``           Prometheus text (metrics.py)

It listens on 127.0.0.1 unless told otherwise: what it shows is not behind
the cluster token (docs/security.md).

Thread contract: ``serve`` runs the server on the calling thread until
interrupted; ``start_in_thread`` runs it on a thread of its own and returns
a handle whose ``stop`` ends it. Reads of the ferry run on a thread pool,
never on the event loop.
"""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ferry.dashboard.metrics import FerryCollector
from ferry.dashboard.source import Source

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
KINDS = ("nodes", "actors", "objects", "transfers", "groups", "memory")
DEFAULT_PORT = 8265  # Ray's dashboard port


def make_app(source: Source, *, page: bool = True, node_id: str | None = None) -> web.Application:
    """The application; with ``page`` False only ``/metrics`` (a node's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FerryCollector(source, node_id))

    async def off_loop(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def metrics(request: web.Request) -> web.Response:
        body = await off_loop(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def snapshot(request: web.Request) -> web.Response:
        return web.json_response(await off_loop(source.snapshot))

    async def rows(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise web.HTTPNotFound(text=f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
        return web.json_response(await off_loop(source.rows, kind))

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(os.path.join(STATIC, "index.html"))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    if page:
        app.router.add_get("/", index)
        app.router.add_get("/api/snapshot", snapshot)
        app.router.add_get("/api/{kind}", rows)
        app.router.add_static("/static/", STATIC)
    return app


def serve(source: Source, host: str, port: int) -> None:
    """Serves the dashboard until interrupted (``ferry dashboard``)."""
    web.run_app(make_app(source), host=host, port=port, print=lambda *_: None,
                handle_signals=True)


class Running:
    """A server on a thread of its own (``start_in_thread``)."""

    def __init__(self, app: web.Application, host: str, port: int):
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, host, port)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._thread = threading.Thread(target=self._loop.run_forever, name="ferry-dashboard",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()


def start_in_thread(source: Source, host: str, port: int, *, page: bool = True,
                    node_id: str | None = None) -> Running:
    """Listens now (an error if the port is taken) and serves on a thread."""
    return Running(make_app(source, page=page, node_id=node_id), host, port)
