"""The inference server of every tf2aif image: Open Inference Protocol (KServe v2) over HTTP
and gRPC.

    python -m tf2aif.image.server ARTIFACT_DIR --host 0.0.0.0 --port 8080     (images)
    tf2aif serve ARTIFACT_DIR                                          (locally)

Public names are imported lazily so `tf2aif.cli.serve` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerOptions", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "ServerOptions":
        from tf2aif.image.server.options import ServerOptions

        return ServerOptions
    if name == "create_app":
        from tf2aif.image.server.app import create_app

        return create_app
    if name == "serve":
        from tf2aif.image.server.run import serve

        return serve
    raise AttributeError(f"module 'tf2aif.image.server' has no attribute {name!r}")
