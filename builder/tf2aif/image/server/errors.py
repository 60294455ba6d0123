"""Errors of the server: `ServerError` stops start-up, `ApiError` answers one request.

Both live in tf2aif.errors with every other tf2aif error (that module is copied into images too).
"""

from __future__ import annotations

from tf2aif.errors import ApiError, ServerError

__all__ = ["ApiError", "ServerError"]
