"""Run the server under uvicorn until SIGINT/SIGTERM (which lets in-flight requests finish)."""

from __future__ import annotations

# uvicorn binds through getaddrinfo, which encodes the host with the idna codec. Imported lazily,
# that codec can fail to load ("unknown encoding: idna") while the model is being imported on the
# loading thread (seen with OpenVINO); importing it here, before any thread starts, avoids the race.
import encodings.idna  # noqa: F401
import logging
from types import FrameType

import uvicorn

from tf2aif.image.server.app import create_app
from tf2aif.image.server.errors import ServerError
from tf2aif.image.server.options import ServerOptions

__all__ = ["serve", "uvicorn_config"]

log = logging.getLogger(__name__)


def uvicorn_config(app: object, options: ServerOptions) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        access_log=options.access_log,
        # X-Forwarded-* only change the client address the access log shows; skip the rewrite
        # on every request when there is no access log
        proxy_headers=options.access_log,
        timeout_graceful_shutdown=int(options.graceful_timeout_s),
        lifespan="on",
        server_header=False,
    )


def serve(options: ServerOptions) -> None:
    """Serve until stopped; raise ServerError if the model cannot be loaded."""
    _configure_logging(options.log_level)
    failures: list[str] = []
    server: uvicorn.Server | None = None

    def stop_on_failure(message: str) -> None:
        failures.append(message)
        if server is not None:
            server.should_exit = True  # polled by uvicorn's main loop

    app = create_app(options, on_failure=stop_on_failure, serve_grpc=True)
    server = _DrainingServer(uvicorn_config(app, options))
    try:
        server.run()
    except SystemExit:  # uvicorn's answer to a failed start-up (the gRPC port is taken, say)
        if not failures:
            raise
    if failures:
        raise ServerError(f"model not served: {failures[0]}")


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the app as soon as a signal asks it to stop: gRPC health turns
    NOT_SERVING while uvicorn still lets in-flight HTTP requests finish."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        begin = getattr(getattr(self.config.app, "state", None), "begin_draining", None)
        if begin is not None:
            begin()


def _configure_logging(level: str) -> None:
    package = logging.getLogger("tf2aif")
    package.setLevel(level.upper())
    if not logging.getLogger().handlers and not package.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
