"""Start the real server (`python -m tf2aif.image.server`) in a subprocess on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tf2aif.bench.targets import free_port

REPO = Path(__file__).resolve().parents[2]
# servers the tests still hold, so a failing test's report can carry their logs (see conftest.py)
LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class ServerProcess:
    def __init__(self, artifact: Path, *, prefix: Sequence[str] = (), **options: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        grpc_port = options.pop("grpc_port", None)  # 0 turns gRPC off
        self.grpc_port = free_port() if grpc_port is None else int(grpc_port)  # type: ignore[call-overload]
        self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        argv = [
            sys.executable,
            "-m",
            "tf2aif.image.server",
            str(artifact),
            "--port",
            str(self.port),
        ]
        argv += ["--grpc-port", str(self.grpc_port)]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + flag[2:])
            else:
                argv += [flag, str(value)]
        env = os.environ | {"PYTHONPATH": str(REPO / "builder"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        # a file, not a pipe: nobody reads a pipe while the tests run, and once its 64 KiB are
        # full the server blocks on its next log line (seen after ~2,000 generated requests)
        self.output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [*prefix, *argv], env=env, stdout=self.output, stderr=subprocess.STDOUT, text=True
        )
        LIVE.add(self)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout} s")

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def logs(self, tail: int | None = None) -> str:
        """What the server wrote so far (the last `tail` bytes), read without moving the file
        offset the running server writes at."""
        fd = self.output.fileno()
        size = os.fstat(fd).st_size
        start = 0 if tail is None else max(0, size - tail)
        return os.pread(fd, size - start, start).decode(errors="replace")

    def metrics(self) -> dict[str, list]:
        """Samples by metric family name."""
        text = httpx.get(self.url + "/metrics").text
        return {family.name: family.samples for family in text_string_to_metric_families(text)}


@contextlib.contextmanager
def running_server(artifact: Path, **options: object) -> Iterator[ServerProcess]:
    server = ServerProcess(artifact, **options)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            server.terminate()


def sample_value(samples: list, name: str, **labels: str) -> float:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    raise KeyError(f"{name} {labels} not in {[s.name for s in samples]}")
