"""Server overhead and dynamic-batching gain, side by side, per model and runtime.

    PYTHONPATH=builder python benchmarks/server_bench.py [--models digits,mobilenetv2]
        [--runtimes tflite,openvino,onnxruntime,tf] [--work DIR] [--json FILE]

For each (model, runtime), with artifacts made by tf2aif.convert.run_conversion:
  1. in-process: the server's own backend class called directly at batch 1 (p50/p99);
  2. served: the same artifact behind `python -m tf2aif.server`, one keep-alive connection,
     binary tensor requests at batch 1 (p50/p99) -> ratio served/in-process (goal <= 1.15);
  3. throughput at concurrency 32 (batch-1 requests), server with --max-batch-size 1 vs 32
     (max queue delay 0) -> ratio (goal >= 3).
Client and server share the machine's cores, as they would on one node.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "builder"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tf2aif.artifact import read_artifact  # noqa: E402
from tf2aif.server.backends import BackendSettings, create_backend  # noqa: E402
from tf2aif.server.protocol import numpy_dtype  # noqa: E402

CONVERTER_BACKEND = {"onnxruntime": "onnx"}
SETTINGS = {  # model -> (latency requests, throughput requests)
    "digits": (500, 2000),
    "mobilenetv2": (150, 400),
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
    rps_unbatched: float
    rps_batched: float
    throughput_ratio: float
    mean_batch: float


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


def make_artifacts(work: Path, model: str, runtimes: list[str]) -> dict[str, Path]:
    from tf2aif.convert import ConvertSpec, run_conversion

    project = work / model / "project"
    made = {runtime: work / model / runtime for runtime in runtimes}
    missing = [r for r, path in made.items() if not (path / "tf2aif-artifact.json").is_file()]
    if not missing:
        return made
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    source = _train_digits(project) if model == "digits" else _mobilenet(project)
    for runtime in missing:
        spec = ConvertSpec(
            name=model,
            runtime=runtime,
            precision="fp32",
            backend=CONVERTER_BACKEND.get(runtime, runtime),
            model=source,
        )
        run_conversion(spec, root=project, out=made[runtime])
    return made


# ---- measurements -----------------------------------------------------------------------------


def _batch1_input(artifact: Path) -> dict[str, np.ndarray]:
    info = read_artifact(artifact)
    rng = np.random.default_rng(1)
    return {
        spec.name: rng.random([1 if d == -1 else d for d in spec.shape]).astype(
            numpy_dtype(spec.datatype)
        )
        for spec in info.inputs
    }


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def in_process_latency(artifact: Path, count: int) -> tuple[float, float]:
    info = read_artifact(artifact)
    backend = create_backend(info, artifact, BackendSettings())
    backend.load()
    inputs = _batch1_input(artifact)
    for _ in range(20):
        backend.infer(inputs)
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        backend.infer(inputs)
        timings.append(time.perf_counter() - started)
    return _percentiles(timings)


def binary_request(artifact: Path) -> tuple[bytes, dict[str, str]]:
    info = read_artifact(artifact)
    inputs = _batch1_input(artifact)
    chunks = [inputs[spec.name].tobytes() for spec in info.inputs]
    header = {
        "inputs": [
            {
                "name": spec.name,
                "shape": list(inputs[spec.name].shape),
                "datatype": spec.datatype,
                "parameters": {"binary_data_size": len(chunk)},
            }
            for spec, chunk in zip(info.inputs, chunks, strict=True)
        ],
        "parameters": {"binary_data_output": True},
    }
    text = json.dumps(header).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(text)),
        "Content-Type": "application/octet-stream",
    }
    return text + b"".join(chunks), headers


class Server:
    def __init__(self, artifact: Path, *args: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = os.environ | {"PYTHONPATH": str(REPO / "builder")}
        command = [sys.executable, "-m", "tf2aif.server", str(artifact), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.path = f"/v2/models/{read_artifact(artifact).name}/infer"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/v2/health/ready")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server not ready")

    def batch_histogram(self) -> tuple[float, float]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        values = {}
        for line in text.splitlines():
            if line.startswith(("tf2aif_batch_size_sum", "tf2aif_batch_size_count")):
                name, value = line.split()
                values[name] = float(value)
        return values["tf2aif_batch_size_sum"], values["tf2aif_batch_size_count"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def served_latency(server: Server, body: bytes, headers: dict[str, str], count: int):
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    timings = []
    for i in range(count + 20):
        started = time.perf_counter()
        connection.request("POST", server.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        if i >= 20:
            timings.append(time.perf_counter() - started)
    connection.close()
    return _percentiles(timings)


async def _throughput(
    port: int, path: str, body: bytes, headers: dict, count: int, concurrency: int
):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    errors = 0
    remaining = count

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                async with session.post(
                    f"http://127.0.0.1:{port}{path}", data=body, headers=headers
                ) as response:
                    await response.read()
                    errors += response.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return count / elapsed, errors


def throughput(artifact: Path, body: bytes, headers: dict, count: int, batch: int) -> tuple:
    server = Server(artifact, "--max-batch-size", str(batch), "--max-queue-size", "1024")
    try:
        asyncio.run(_throughput(server.port, server.path, body, headers, 64, 32))  # warm
        before = server.batch_histogram()
        rps, errors = asyncio.run(_throughput(server.port, server.path, body, headers, count, 32))
        after = server.batch_histogram()
    finally:
        server.stop()
    if errors:
        raise RuntimeError(f"{errors} failed requests")
    mean_batch = (after[0] - before[0]) / max(1.0, after[1] - before[1])
    return rps, mean_batch


def measure(model: str, runtime: str, artifact: Path) -> Row:
    latency_count, throughput_count = SETTINGS[model]
    inproc = in_process_latency(artifact, latency_count)
    body, headers = binary_request(artifact)
    server = Server(artifact)
    try:
        served = served_latency(server, body, headers, latency_count)
    finally:
        server.stop()
    unbatched, _ = throughput(artifact, body, headers, throughput_count, 1)
    batched, mean_batch = throughput(artifact, body, headers, throughput_count, 32)
    return Row(
        model=model,
        runtime=runtime,
        inproc_p50_ms=inproc[0],
        inproc_p99_ms=inproc[1],
        served_p50_ms=served[0],
        served_p99_ms=served[1],
        latency_ratio=served[0] / inproc[0],
        rps_unbatched=unbatched,
        rps_batched=batched,
        throughput_ratio=batched / unbatched,
        mean_batch=mean_batch,
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| model | runtime | in-process p50 / p99 ms | served p50 / p99 ms | served/in-process p50 "
        "| req/s unbatched | req/s batched (mean batch) | batched/unbatched |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.runtime} | {r.inproc_p50_ms:.3f} / {r.inproc_p99_ms:.3f} "
            f"| {r.served_p50_ms:.3f} / {r.served_p99_ms:.3f} | {r.latency_ratio:.2f}x "
            f"| {r.rps_unbatched:.0f} | {r.rps_batched:.0f} ({r.mean_batch:.1f}) "
            f"| {r.throughput_ratio:.2f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="digits,mobilenetv2")
    parser.add_argument("--runtimes", default="tflite,openvino,onnxruntime,tf")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tf2aif-server-bench"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        artifacts = make_artifacts(args.work, model, args.runtimes.split(","))
        for runtime, artifact in artifacts.items():
            rows.append(measure(model, runtime, artifact))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
