"""Errors of the server: `ServerError` stops start-up, `ApiError` answers one request.

Tf2aifError
└── ServerError     the artifact cannot be served (bad artifact, runtime missing, load failed)
ApiError            one request failed: HTTP status + message (+ headers), sent as {"error": ...}
"""

from __future__ import annotations

from collections.abc import Mapping

from tf2aif.errors import Tf2aifError

__all__ = ["ApiError", "ServerError"]


class ServerError(Tf2aifError):
    pass


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None):
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {message}")
