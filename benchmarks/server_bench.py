"""Server overhead and dynamic-batching gain, side by side, per model and runtime.

    PYTHONPATH=builder python benchmarks/server_bench.py [--models digits,mobilenetv2]
        [--runtimes tflite,openvino,onnxruntime,tf] [--rounds 2] [--seconds 4]
        [--no-pin] [--work DIR] [--json FILE]

For each (model, runtime), with artifacts made by tf2aif.image.convert.run_conversion:
  1. in-process: the server's own backend class called directly at batch 1 (p50/p99);
  2. served: the same artifact behind `python -m tf2aif.image.server`, one keep-alive connection,
     binary tensor requests at batch 1 (p50/p99) -> ratio served/in-process (goal <= 1.15);
     1 and 2 alternate in 5 blocks, so both see the same moments of a shared machine;
  HTTP floor: the same client and body against uvicorn (as the server runs it) around an app
     that does nothing: p50 at concurrency 1 and req/s at 32 - what HTTP alone costs;
  3. throughput at concurrency 32 (batch-1 binary requests) against three servers started side
     by side: --max-batch-size 1 (unbatched), 32 with --no-adaptive-batching (fixed), and 32
     with the adaptive cap (the default) -> ratios to unbatched (goal: >= 3 where batching can
     win, never a loss). The three are measured in turn, `--rounds` times; the median counts.

Pinning (default when the machine has 2+ CPUs): servers and the in-process measurement run on
the last CPU, the client on the others, so client and server never take each other's time.
The throughput client is wrk (C, one thread) when installed - Python clients top out near the
server's own rate on one core - else aiohttp; the output says which.

One module, over 400 lines on purpose: a benchmark is one experiment, read top to bottom;
what it shares with `tf2aif bench` (payload encoding, statistics, free ports) is imported from
tf2aif.bench, and server_vs_others.py reuses its servers, clients and options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "builder"))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cpu_variants  # noqa: E402

from tf2aif.bench.payloads import encode_infer  # noqa: E402
from tf2aif.bench.stats import summarize  # noqa: E402
from tf2aif.bench.targets import free_port  # noqa: E402
from tf2aif.image.artifact import read_artifact  # noqa: E402
from tf2aif.image.server.backends import BackendSettings, create_backend  # noqa: E402
from tf2aif.image.server.protocol import numpy_dtype  # noqa: E402

LATENCY_REQUESTS = {"digits": 500, "mobilenetv2": 150}
CONCURRENCY = 32
BATCHING = {  # configuration -> server flags
    "unbatched": ("--max-batch-size", "1"),
    "fixed": ("--max-batch-size", "32", "--no-adaptive-batching"),
    "adaptive": ("--max-batch-size", "32"),
}


@dataclass(frozen=True, kw_only=True)
class Row:
    model: str
    runtime: str
    inproc_p50_ms: float
    inproc_p99_ms: float
    served_p50_ms: float
    served_p99_ms: float
    latency_ratio: float
    rps: dict[str, float]  # batching configuration -> median req/s
    rps_runs: dict[str, list[float]]
    mean_batch: dict[str, float]
    adaptive_cap: int
    per_row_us: dict[str, float]
    load_average: float
    floor_p50_ms: float  # the same client against uvicorn around an app that does nothing
    floor_rps: float


# ---- CPUs -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Cpus:
    server: frozenset[int] | None  # None: no pinning
    client: frozenset[int] | None

    @classmethod
    def split(cls, pin: bool) -> Cpus:
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(server=None, client=None)
        return cls(server=frozenset(cpus[-1:]), client=frozenset(cpus[:-1]))

    def describe(self) -> str:
        if self.server is None:
            return "not pinned: client and server share every CPU"
        return f"server on CPU {sorted(self.server)}, client on CPU {sorted(self.client or ())}"


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run this process (and what it starts) on `cpus` for a while."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ---- artifacts --------------------------------------------------------------------------------


def _train_digits(project: Path) -> str:
    sys.path.insert(0, str(REPO / "examples" / "digits"))
    import train

    train.train(project / "models" / "digits")
    return "models/digits"


def _mobilenet(project: Path) -> str:
    import keras

    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    for layer in model.layers:  # BN statistics from one batch, so outputs are not constant
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    images = np.random.default_rng(0).uniform(-1, 1, (32, 224, 224, 3)).astype(np.float32)
    model(images, training=True)
    model.export(str(project / "models" / "mobilenetv2"), verbose=False)
    return "models/mobilenetv2"


def make_artifacts(work: Path, model: str, runtimes: Sequence[str]) -> dict[str, Path]:
    made = {runtime: work / model / runtime for runtime in runtimes}
    missing = [r for r, path in made.items() if not (path / "tf2aif-artifact.json").is_file()]
    if not missing:
        return made
    from tf2aif.image.convert import ConvertSpec, run_conversion

    project = work / model / "project"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    source = _train_digits(project) if model == "digits" else _mobilenet(project)
    for runtime in missing:
        spec = ConvertSpec(
            name=model,
            runtime=runtime,
            precision="fp32",
            backend=cpu_variants.backend(runtime),
            model=source,
        )
        run_conversion(spec, root=project, out=made[runtime])
    return made


# ---- requests ---------------------------------------------------------------------------------


def batch1_input(artifact: Path) -> dict[str, np.ndarray]:
    info = read_artifact(artifact)
    rng = np.random.default_rng(1)
    return {
        spec.name: rng.random([1 if d == -1 else d for d in spec.shape]).astype(
            numpy_dtype(spec.datatype)
        )
        for spec in info.inputs
    }


def infer_request(artifact: Path, *, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The batch-1 OIP infer request (body, headers), encoded as `tf2aif bench` encodes it."""
    payload = encode_infer(read_artifact(artifact).name, batch1_input(artifact), binary=binary)
    return payload.body, dict(payload.headers)


def percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 in ms, by the statistics `tf2aif bench` reports."""
    summary = summarize([s * 1e3 for s in seconds])
    return summary.p50, summary.p99


# ---- servers ----------------------------------------------------------------------------------


class Process:
    """A server process on `cpus`, ready once GET `ready_path` answers 200."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        infer_path: str,
        cpus: frozenset[int] | None,
        env: dict[str, str] | None = None,
        ready_path: str = "/v2/health/ready",
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port
        self.path = infer_path
        self.log = log
        output = log.open("wb") if log else subprocess.DEVNULL
        with pinned(cpus):  # the child inherits the CPU set from its first instruction
            self.process = subprocess.Popen(
                list(argv),
                env=os.environ | (env or {}),
                cwd=cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text()[-2000:] if self.log else ""
                raise RuntimeError(f"server exited with {self.process.returncode}\n{tail}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", path)
                if connection.getresponse().status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"server on port {self.port} not ready after {timeout} s")

    def get_json(self, path: str) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def tf2aif_server(
    artifact: Path, cpus: frozenset[int] | None, *flags: str, grpc_port: int = 0
) -> Process:
    port = free_port()
    argv = [sys.executable, "-m", "tf2aif.image.server", str(artifact), "--port", str(port), *flags]
    argv += ["--grpc-port", str(grpc_port)]  # 0: off
    return Process(
        argv,
        port=port,
        infer_path=f"/v2/models/{read_artifact(artifact).name}/infer",
        cpus=cpus,
        env={"PYTHONPATH": str(REPO / "builder"), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


FLOOR_APP = """
async def app(scope, receive, send):  # reads the body, answers a fixed OIP-sized JSON
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = b'{"model_name":"m","model_version":"1","outputs":[]}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


def floor_server(work: Path, cpus: frozenset[int] | None) -> Process:
    """uvicorn as tf2aif runs it (httptools, uvloop, no access log) around an app that does
    nothing: what HTTP and the client cost on their own."""
    (work / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(work)]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    argv += ["--http", "httptools", "--loop", "uvloop", "--no-proxy-headers"]
    return Process(argv, port=port, infer_path="/v2/models/m/infer", cpus=cpus, ready_path="/")


def batch_histogram(server: Process) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("tf2aif_batch_size_sum", "tf2aif_batch_size_count")):
            name, value = line.split()
            values[name] = float(value)
    return values["tf2aif_batch_size_sum"], values["tf2aif_batch_size_count"]


# ---- clients ----------------------------------------------------------------------------------


def sequential_latency(
    server: Process, body: bytes, headers: dict[str, str], count: int, warm: int = 20
) -> tuple[float, float]:
    """p50/p99 ms of `count` requests, one at a time on one keep-alive connection."""
    return percentiles(sequential_timings(server, body, headers, count, warm))


def sequential_timings(
    server: Process, body: bytes, headers: dict[str, str], count: int, warm: int = 20
) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    timings = []
    for i in range(count + warm):
        started = time.perf_counter()
        connection.request("POST", server.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        if i >= warm:
            timings.append(time.perf_counter() - started)
    connection.close()
    return timings


def load_client() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp"


def throughput(
    server: Process, body: bytes, headers: dict[str, str], seconds: float, concurrency: int
) -> float:
    """Requests per second at `concurrency`; raises if any answer is not 200."""
    if load_client() == "wrk":
        return _wrk(server, body, headers, seconds, concurrency)
    return asyncio.run(_aiohttp(server, body, headers, seconds, concurrency))


def _wrk(server: Process, body: bytes, headers: dict, seconds: float, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        payload = Path(scratch) / "body"
        payload.write_bytes(body)
        script = Path(scratch) / "post.lua"
        lines = ['wrk.method = "POST"', f'local f = io.open("{payload}", "rb")']
        lines += ["wrk.body = f:read('*all')", "f:close()"]
        lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
        script.write_text("\n".join(lines) + "\n")
        url = f"http://127.0.0.1:{server.port}{server.path}"
        argv = [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "60s",
        ]
        argv += ["-s", str(script), url]
        output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    if rate is None or failed is not None:
        raise RuntimeError(f"wrk reported failures:\n{output}")
    return float(rate.group(1))


async def _aiohttp(server: Process, body: bytes, headers: dict, seconds: float, concurrency: int):
    import aiohttp

    url = f"http://127.0.0.1:{server.port}{server.path}"
    done, errors = 0, 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    errors += response.status != 200
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    return done / elapsed


# ---- one row ----------------------------------------------------------------------------------


def in_process_timings(backend: Any, inputs: dict[str, np.ndarray], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        backend.infer(inputs)
        timings.append(time.perf_counter() - started)
    return timings


def latencies(
    artifact: Path, cpus: Cpus, count: int, blocks: int = 5
) -> tuple[tuple[float, float], tuple[float, float]]:
    """In-process and served p50/p99 ms, measured in alternating blocks so that both see the
    same moments of a shared machine. In-process runs on the server's CPUs."""
    with pinned(cpus.server):
        backend = create_backend(read_artifact(artifact), artifact, BackendSettings())
        backend.load()
        inputs = batch1_input(artifact)
        in_process_timings(backend, inputs, 20)
    body, headers = infer_request(artifact, binary=True)
    server = tf2aif_server(artifact, cpus.server)
    inproc: list[float] = []
    served: list[float] = []
    try:
        for _ in range(blocks):
            with pinned(cpus.server):
                inproc += in_process_timings(backend, inputs, count // blocks)
            with pinned(cpus.client):
                served += sequential_timings(server, body, headers, count // blocks, warm=5)
    finally:
        server.stop()
        backend.close()
    return percentiles(inproc), percentiles(served)


def batching_runs(
    artifact: Path, cpus: Cpus, body: bytes, headers: dict, seconds: float, rounds: int
) -> tuple[dict[str, list[float]], dict[str, float], dict]:
    """req/s per configuration, `rounds` each, in turn; mean batch; the adaptive profile."""
    servers = {
        name: tf2aif_server(artifact, cpus.server, *flags) for name, flags in BATCHING.items()
    }
    try:
        runs: dict[str, list[float]] = {name: [] for name in servers}
        rows: dict[str, list[float]] = {name: [0.0, 0.0] for name in servers}
        with pinned(cpus.client):
            for server in servers.values():  # warm the connections and code paths
                throughput(server, body, headers, 1, CONCURRENCY)
            for _ in range(rounds):
                for name, server in servers.items():
                    before = batch_histogram(server)
                    runs[name].append(throughput(server, body, headers, seconds, CONCURRENCY))
                    after = batch_histogram(server)
                    rows[name][0] += after[0] - before[0]
                    rows[name][1] += after[1] - before[1]
        mean_batch = {name: total / max(1.0, calls) for name, (total, calls) in rows.items()}
        batching = servers["adaptive"].get_json(servers["adaptive"].path[: -len("/infer")])
    finally:
        for server in servers.values():
            server.stop()
    return runs, mean_batch, batching["parameters"]["batching"]


def measure(model: str, runtime: str, artifact: Path, cpus: Cpus, args: argparse.Namespace) -> Row:
    count = LATENCY_REQUESTS[model]
    inproc, served = latencies(artifact, cpus, count)
    body, headers = infer_request(artifact, binary=True)
    floor = floor_server(args.work, cpus.server)
    try:
        with pinned(cpus.client):
            floor_latency = sequential_latency(floor, body, headers, count)
            floor_rps = throughput(floor, body, headers, args.seconds, CONCURRENCY)
    finally:
        floor.stop()
    runs, mean_batch, batching = batching_runs(
        artifact, cpus, body, headers, args.seconds, args.rounds
    )
    return Row(
        model=model,
        runtime=runtime,
        inproc_p50_ms=inproc[0],
        inproc_p99_ms=inproc[1],
        served_p50_ms=served[0],
        served_p99_ms=served[1],
        latency_ratio=served[0] / inproc[0],
        rps={name: statistics.median(values) for name, values in runs.items()},
        rps_runs=runs,
        mean_batch=mean_batch,
        adaptive_cap=batching["batch_cap"],
        per_row_us=batching.get("per_row_us", {}),
        load_average=os.getloadavg()[0],
        floor_p50_ms=floor_latency[0],
        floor_rps=floor_rps,
    )


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| model | runtime | in-process p50 / p99 ms | served p50 / p99 ms | served/in-process p50 "
        "| req/s unbatched | req/s fixed 32 (mean batch) | req/s adaptive (cap, mean batch) "
        "| fixed/unbatched | adaptive/unbatched | HTTP floor p50 ms, req/s | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rps, batch = r.rps, r.mean_batch
        lines.append(
            f"| {r.model} | {r.runtime} | {r.inproc_p50_ms:.3f} / {r.inproc_p99_ms:.3f} "
            f"| {r.served_p50_ms:.3f} / {r.served_p99_ms:.3f} | {r.latency_ratio:.2f}x "
            f"| {rps['unbatched']:.0f} | {rps['fixed']:.0f} ({batch['fixed']:.1f}) "
            f"| {rps['adaptive']:.0f} ({r.adaptive_cap}, {batch['adaptive']:.1f}) "
            f"| {rps['fixed'] / rps['unbatched']:.2f}x | {rps['adaptive'] / rps['unbatched']:.2f}x "
            f"| {r.floor_p50_ms:.3f}, {r.floor_rps:.0f} | {r.load_average:.1f} |"
        )
    return "\n".join(lines)


def common_arguments(parser: argparse.ArgumentParser, *, seconds: float) -> None:
    """The options every server benchmark takes: models, rounds, run length, pinning, output."""
    parser.add_argument("--models", default="digits,mobilenetv2")
    parser.add_argument("--rounds", type=int, default=2, help="throughput runs per configuration")
    parser.add_argument(
        "--seconds", type=float, default=seconds, help="length of one throughput run"
    )
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tf2aif-server-bench"))
    parser.add_argument("--json", type=Path)


def report(text: str, rows: Sequence[Any], json_path: Path | None) -> None:
    """The final table after the load average, and the rows as JSON when asked."""
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print(text)
    if json_path:
        json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_arguments(parser, seconds=4)
    parser.add_argument("--runtimes", default="tflite,openvino,onnxruntime,tf")
    args = parser.parse_args()
    cpus = Cpus.split(args.pin)
    print(
        f"{cpus.describe()}; load client: {load_client()}; load average at the start: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    rows = []
    for model in args.models.split(","):
        artifacts = make_artifacts(args.work, model, args.runtimes.split(","))
        for runtime, artifact in artifacts.items():
            rows.append(measure(model, runtime, artifact, cpus, args))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    report(table(rows), rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
