"""Async HTTP clients behind one small interface, so the load loop does not care which library
sends. aiohttp is the default: it has the higher ceiling on this kind of machine (docs/bench.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from tf2aif.bench.payloads import Payload

__all__ = ["CLIENT_KINDS", "HttpClient", "open_client"]

CLIENT_KINDS = ("aiohttp", "httpx")


class HttpClient(Protocol):
    async def send(self, payload: Payload) -> str:
        """Send one request and read the whole answer: "ok" or an error key."""

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET a path: (status, body); raises on connection errors."""

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST a JSON body: (status, body); raises on connection errors."""


@contextlib.asynccontextmanager
async def open_client(
    kind: str, base_url: str, *, timeout_s: float, max_connections: int
) -> AsyncIterator[HttpClient]:
    base = base_url.rstrip("/")
    if kind == "aiohttp":
        client: Any = _Aiohttp(base, timeout_s, max_connections)
    elif kind == "httpx":
        client = _Httpx(base, timeout_s, max_connections)
    else:
        raise ValueError(f"unknown HTTP client {kind!r}; choose one of {', '.join(CLIENT_KINDS)}")
    try:
        yield client
    finally:
        await client.close()


def _status_key(status: int) -> str:
    return "ok" if 200 <= status < 300 else f"http_{status}"


class _Aiohttp:
    def __init__(self, base: str, timeout_s: float, max_connections: int) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._base = base
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            skip_auto_headers=("User-Agent",),
        )

    async def send(self, payload: Payload) -> str:
        try:
            async with self._session.request(
                payload.method,
                self._base + payload.path,
                data=payload.body or None,
                headers=dict(payload.headers),
            ) as response:
                await response.read()
                return _status_key(response.status)
        except asyncio.TimeoutError:
            return "timeout"
        except (self._aiohttp.ClientConnectionError, OSError):
            return "connection"
        except self._aiohttp.ClientError:
            return "protocol"

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self._session.get(self._base + path) as response:
            return response.status, await response.read()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        async with self._session.post(self._base + path, data=body, headers=headers) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        await self._session.close()


class _Httpx:
    def __init__(self, base: str, timeout_s: float, max_connections: int) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.AsyncClient(
            base_url=base,
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def send(self, payload: Payload) -> str:
        try:
            response = await self._client.request(
                payload.method,
                payload.path,
                content=payload.body or None,
                headers=dict(payload.headers),
            )
            return _status_key(response.status_code)
        except self._httpx.TimeoutException:
            return "timeout"
        except (self._httpx.TransportError, OSError) as exc:
            if isinstance(exc, self._httpx.ProtocolError):
                return "protocol"
            return "connection"

    async def get(self, path: str) -> tuple[int, bytes]:
        response = await self._client.get(path)
        return response.status_code, response.content

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        response = await self._client.post(path, content=body, headers=headers)
        return response.status_code, response.content

    async def close(self) -> None:
        await self._client.aclose()
