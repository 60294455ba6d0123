"""What a bench talks to: a running server (URL), a local artifact served by a `tf2aif serve`
subprocess, or a built image run as a container. Each is a context manager yielding an Endpoint;
whatever it started is stopped on exit."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tf2aif.errors import BenchError, ToolMissingError

__all__ = [
    "Endpoint",
    "artifact_endpoint",
    "container_cpu_seconds",
    "host_platform",
    "image_endpoint",
    "process_tree_cpu",
    "process_tree_rss",
    "url_endpoint",
    "wait_ready",
]

log = logging.getLogger(__name__)

CONTAINER_PORT = 8080  # the port tf2aif server images listen on


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    base_url: str
    model: str | None  # None: ask the server
    variant: str
    target_kind: str  # url | image | artifact
    target: str
    resident_memory: Callable[[], int | None] = field(default=lambda: None)  # bytes
    # CPU seconds (user + system) the server has used so far; None: not ours to inspect
    cpu_seconds: Callable[[], float | None] = field(default=lambda: None)


def host_platform() -> str:
    """The tf2aif platform this machine's CPU is: cpu (amd64) or arm (arm64)."""
    return "arm" if platform.machine().lower() in ("aarch64", "arm64") else "cpu"


@contextlib.contextmanager
def url_endpoint(url: str, *, model: str | None, variant: str | None) -> Iterator[Endpoint]:
    yield Endpoint(
        base_url=url.rstrip("/"), model=model, variant=variant or url, target_kind="url", target=url
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base_url: str, *, timeout_s: float, alive: Callable[[], str | None]) -> None:
    """Poll /v2/health/ready until 200; `alive()` returns a reason when the server has died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise BenchError(f"the server at {base_url} stopped before it was ready: {dead}")
        try:
            with urllib.request.urlopen(base_url + "/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise BenchError(f"the server at {base_url} was not ready after {timeout_s:g} s")


@contextlib.contextmanager
def artifact_endpoint(
    artifact: Path, *, variant: str | None, ready_timeout_s: float = 120.0, serve_args=()
) -> Iterator[Endpoint]:
    """Serve a converted artifact with `python -m tf2aif serve` on a free local port."""
    from tf2aif.image.artifact import read_artifact

    try:
        info = read_artifact(artifact)
    except FileNotFoundError as exc:
        raise BenchError(str(exc)) from None
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "tf2aif",
        "serve",
        str(artifact),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        "0",
        *serve_args,
    ]  # fmt: skip  (HTTP is measured)
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as logfile:
        process = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, env=_child_env())
        try:
            wait_ready(base_url, timeout_s=ready_timeout_s, alive=lambda: _exited(process, logfile))
            yield Endpoint(
                base_url=base_url,
                model=info.name,
                variant=variant or f"{host_platform()}/{info.runtime}/{info.precision}",
                target_kind="artifact",
                target=str(artifact),
                resident_memory=lambda: process_tree_rss(process.pid),
                cpu_seconds=lambda: process_tree_cpu(process.pid),
            )
        finally:
            _stop(process)


def _child_env() -> dict[str, str]:
    """The child imports this very tf2aif, installed or not."""
    import tf2aif

    package_parent = str(Path(tf2aif.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_parent, path) if p)}


def _exited(process: subprocess.Popen, logfile) -> str | None:
    if process.poll() is None:
        return None
    logfile.seek(0)
    tail = logfile.read().decode(errors="replace").strip().splitlines()[-15:]
    return f"exit code {process.returncode}\n" + "\n".join(tail)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _process_tree(pid: int) -> Iterator[Path]:
    """/proc/<pid> of a process and of its descendants (Linux)."""
    pending = [pid]
    while pending:
        proc = Path(f"/proc/{pending.pop()}")
        yield proc
        try:
            for task in (proc / "task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue


def process_tree_rss(pid: int) -> int | None:
    """Resident set size of a process and its descendants, in bytes (Linux /proc)."""
    total = 0
    for proc in _process_tree(pid):
        try:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total or None


def process_tree_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads) and its live descendants.

    Per process, the sum of the scheduler's nanosecond run time over its live threads
    (/proc/<pid>/task/*/schedstat): the 10 ms clock ticks of /proc/<pid>/stat are too coarse
    for profiling a few dozen millisecond requests. A server keeps its threads, so the sum
    only grows; where schedstat is missing, fields 14 and 15 of /proc/<pid>/stat (ticks).
    """
    total, found = 0.0, False
    for proc in _process_tree(pid):
        seconds = _schedstat_seconds(proc)
        if seconds is None:
            seconds = _stat_seconds(proc)
        if seconds is not None:
            total += seconds
            found = True
    return total if found else None


def _schedstat_seconds(proc: Path) -> float | None:
    try:
        tasks = list((proc / "task").iterdir())
    except OSError:
        return None
    total, read = 0, False
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
            read = True
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9 if read else None


def _stat_seconds(proc: Path) -> float | None:
    try:
        stat = (proc / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def image_endpoint(
    image: str,
    *,
    variant: str | None,
    model: str | None = None,
    container_port: int = CONTAINER_PORT,
    ready_timeout_s: float = 120.0,
) -> Iterator[Endpoint]:
    """Run a server image with the docker SDK on a random host port; remove it afterwards."""
    client = _docker_client()
    import docker.errors

    try:
        container = client.containers.run(
            image, detach=True, ports={f"{container_port}/tcp": ("127.0.0.1", None)}
        )
    except docker.errors.ImageNotFound:
        raise BenchError(f"image {image!r} not found locally; build or pull it first") from None
    except docker.errors.APIError as exc:
        raise BenchError(f"cannot start {image!r}: {exc.explanation or exc}") from None
    try:
        container.reload()
        binding = container.ports[f"{container_port}/tcp"][0]
        base_url = f"http://127.0.0.1:{binding['HostPort']}"
        wait_ready(base_url, timeout_s=ready_timeout_s, alive=lambda: _container_dead(container))
        yield Endpoint(
            base_url=base_url,
            model=model,
            variant=variant or image,
            target_kind="image",
            target=image,
            resident_memory=lambda: _container_memory(container),
            cpu_seconds=lambda: _container_cpu(container),
        )
    finally:
        container.remove(force=True)


def _docker_client():
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # the SDK raises several unrelated types when no engine answers
        raise ToolMissingError(
            f"no Docker engine answers ({exc}); start one, or bench the artifact with --artifact"
        ) from None


def _container_dead(container) -> str | None:
    container.reload()
    if container.status in ("exited", "dead"):
        logs = container.logs(tail=15).decode(errors="replace")
        return f"container {container.short_id} {container.status}\n{logs}"
    return None


def _container_memory(container) -> int | None:
    """Memory use from the engine's stats, minus page cache (as `docker stats` shows it)."""
    stats = container.stats(stream=False).get("memory_stats", {})
    usage = stats.get("usage")
    if usage is None:
        return None
    cache = stats.get("stats", {}).get("inactive_file", stats.get("stats", {}).get("cache", 0))
    return int(usage - cache)


def _container_cpu(container) -> float | None:
    """CPU seconds of the container's cgroup so far, from one engine stats sample (no streaming)."""
    try:
        stats = container.stats(stream=False, one_shot=True)
    except Exception as exc:  # an engine or SDK without one-shot stats: the latency stands in
        log.debug("no container CPU figure: %s", exc)
        return None
    return container_cpu_seconds(stats)


def container_cpu_seconds(stats: dict) -> float | None:
    """`cpu_stats.cpu_usage.total_usage` (nanoseconds, cgroup v1 and v2) in seconds."""
    usage = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage")
    return None if usage is None else usage / 1e9
