"""Serving a WSGI app on 127.0.0.1 in a background thread, on a free port."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

# How often the serving loop looks for a shutdown request: stop() waits up to this long.
POLL_SECONDS = 0.05


class BackgroundServer:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        request_handler: type[WSGIRequestHandler] | None = None,
    ) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=request_handler)
        self._thread = threading.Thread(target=self._serve, name=f"http-{self.port}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=POLL_SECONDS)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
