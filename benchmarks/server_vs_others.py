"""tf2aif's server against KServe's ModelServer and Seldon's MLServer, same model, same runtime.

    PYTHONPATH=builder python benchmarks/server_vs_others.py [--models digits,mobilenetv2]
        [--protocols json,grpc] [--kserve-python /work/venv-kserve/bin/python]
        [--mlserver /work/venv-mlserver/bin/mlserver] [--rounds 2] [--seconds 5]
        [--no-pin] [--work DIR] [--json FILE]

Every server serves the same ONNX file (the onnxruntime artifact tf2aif converts) with
onnxruntime on the CPU, through the same session settings (intra-op threads = the server's CPUs,
no spinning: what tf2aif's backend does). KServe and MLServer load it through a small custom
model class, as their docs describe (`kserve.Model` with `predict`, and `mlserver.MLModel`),
written into the work folder by this script. They run in their own virtualenvs:

    python3.11 -m venv /work/venv-kserve && /work/venv-kserve/bin/pip install kserve onnxruntime
    python3.11 -m venv /work/venv-mlserver && /work/venv-mlserver/bin/pip install mlserver onnxruntime

A server whose interpreter is missing is skipped, with a note. One client drives all of them:
JSON Open Inference Protocol requests (`{"inputs": [{"name", "shape", "datatype", "data"}]}`,
the form every OIP server accepts), batch 1. Latency: one request at a time on one keep-alive
connection (p50/p99). Throughput: wrk (else aiohttp) at concurrency 32. Before measuring, each
server's answer is checked against onnxruntime in-process (atol 1e-4). The servers run side by
side and are measured in turn, `--rounds` times; the median counts.

gRPC (`--protocols` has grpc): each server's own `inference.GRPCInferenceService` endpoint,
ModelInfer with the tensor in raw_input_contents (what tritonclient.grpc sends); one request
at a time on one channel for latency, 32 calls kept in flight on one channel for throughput
(futures of the synchronous channel: grpc's C core does the work, about 20% less client CPU
per call than 32 grpc.aio coroutines). The request bytes are serialized once, so the client
does the same work for every server. "client %" is the share of its core the client process
used during the throughput runs (wrk's, for JSON): well under 100%, the client was not what
capped the rate. The onnxruntime row is the runtime called in-process on the server's CPU (same
session settings): the floor a served request cannot go below. Before every measurement the
script waits until no server is busy (a server still answering the previous run's backlog
would take CPU from the next one on the shared core), and each throughput round starts with
another server. "server CPU us/req" is the
CPU time the server's processes and threads used per request during the throughput runs
(scheduler nanoseconds): on a shared machine it moves far less than wall-clock figures.

Batching: tf2aif as it ships (adaptive cap, max 32); KServe's ModelServer has no server-side
batcher (KServe batches in its agent sidecar); MLServer both without (its default) and with
its adaptive batching (max_batch_size 32, max_batch_time 1 ms).

One module, over 400 lines on purpose: one experiment, read top to bottom; the two model
classes for KServe and MLServer are source text written into their own virtualenvs' work folder,
and the servers, clients and options come from server_bench.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_bench as bench  # noqa: E402

from tf2aif.bench.targets import free_port, process_tree_cpu  # noqa: E402
from tf2aif.image.artifact import read_artifact  # noqa: E402

KSERVE_MODEL = '''
"""KServe ModelServer serving one ONNX file with onnxruntime (kserve.Model, v2 protocol)."""
import argparse, os
import numpy as np
import onnxruntime as ort
import kserve
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid


class OnnxModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None):
        array = payload.inputs[0].as_numpy()
        result = self.session.run(None, {self.input: array})[0]
        output = InferOutput(name="output_0", shape=list(result.shape), datatype="FP32")
        output.set_data_from_numpy(result, binary_data=False)
        response_id = payload.id or generate_uuid()  # as KServe's custom-model example does
        return InferResponse(model_name=self.name, infer_outputs=[output], response_id=response_id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model = OnnxModel(args.model_name, args.model_path)
    ModelServer().start([model])
'''

MLSERVER_MODEL = '''
"""MLServer runtime serving one ONNX file with onnxruntime (mlserver.MLModel)."""
import os
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        array = NumpyCodec.decode_input(payload.inputs[0])
        result = self.session.run(None, {self.input: array})[0]
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("output_0", result)],
        )
'''


@dataclass(frozen=True, kw_only=True)
class Result:
    model: str
    protocol: str  # json, grpc; "in-process" for the runtime called directly
    server: str
    p50_ms: float
    p99_ms: float
    rps: float
    rps_runs: list[float]
    cpu_us: float  # server CPU (all its processes and threads) per request at concurrency 32
    client_share: float  # CPU the client used during the throughput runs, share of one core
    note: str


# ---- the servers ------------------------------------------------------------------------------


def start_tf2aif(
    artifact: Path, work: Path, cpus: frozenset[int] | None, grpc_port: int = 0
) -> bench.Process:
    return bench.tf2aif_server(artifact, cpus, grpc_port=grpc_port)


def start_kserve(
    artifact: Path, work: Path, cpus: frozenset[int] | None, python: Path, grpc_port: int = 0
) -> bench.Process:
    script = work / "kserve_onnx.py"
    script.write_text(KSERVE_MODEL)
    name = read_artifact(artifact).name
    port = free_port()
    argv = [str(python), str(script), "--model_name", name, "--http_port", str(port)]
    enabled = "true" if grpc_port else "false"
    argv += ["--grpc_port", str(grpc_port or free_port()), "--enable_grpc", enabled]
    argv += ["--enable_latency_logging", "false", "--configure_logging", "false"]
    argv += ["--model_path", str(_onnx_file(artifact))]
    return bench.Process(
        argv,
        port=port,
        infer_path=f"/v2/models/{name}/infer",
        cpus=cpus,
        ready_path=f"/v2/models/{name}/ready",
        log=work / "kserve.log",
    )


def start_mlserver(
    artifact: Path,
    work: Path,
    cpus: frozenset[int] | None,
    mlserver: Path,
    batch: bool,
    grpc_port: int = 0,
) -> bench.Process:
    label = "mlserver-batch" if batch else "mlserver"
    folder = work / label
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "onnx_runtime.py").write_text(MLSERVER_MODEL)
    name = read_artifact(artifact).name
    port = free_port()
    settings = {
        "http_port": port,
        "grpc_port": grpc_port or free_port(),
        "metrics_port": free_port(),
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": name,
        "implementation": "onnx_runtime.OnnxModel",
        "parameters": {"uri": str(_onnx_file(artifact))},
    }
    if batch:
        model_settings |= {"max_batch_size": 32, "max_batch_time": 0.001}
    (folder / "model" / "model-settings.json").write_text(json.dumps(model_settings))
    return bench.Process(
        [str(mlserver), "start", str(folder)],
        port=port,
        infer_path=f"/v2/models/{name}/infer",
        cpus=cpus,
        cwd=folder,
        ready_path=f"/v2/models/{name}/ready",
        log=work / f"{label}.log",
    )


def _onnx_file(artifact: Path) -> Path:
    return artifact / read_artifact(artifact).model_file


# ---- requests and checks ----------------------------------------------------------------------


def json_request(artifact: Path) -> tuple[bytes, dict[str, str], np.ndarray]:
    """The batch-1 JSON OIP request every server accepts, and its (first and only) input."""
    body, headers = bench.infer_request(artifact, binary=False)
    (array,) = bench.batch1_input(artifact).values()
    return body, headers, array


def reference_output(artifact: Path, array: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(_onnx_file(artifact)), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def check_answer(server: bench.Process, body: bytes, headers: dict, expected: np.ndarray) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("POST", server.path, body=body, headers=headers)
    response = connection.getresponse()
    document = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {document}")
    output = document["outputs"][0]
    got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_allclose(got, expected, atol=1e-4)


# ---- gRPC ---------------------------------------------------------------------------------------


def grpc_request(artifact: Path, array: np.ndarray) -> bytes:
    """A serialized ModelInferRequest with the tensor in raw_input_contents."""
    from tf2aif.image.server.grpc_messages import message

    info = read_artifact(artifact)
    spec = info.inputs[0]
    request = message("ModelInferRequest")(model_name=info.name)
    request.inputs.add(name=spec.name, datatype=spec.datatype, shape=array.shape)
    request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    return request.SerializeToString()


def grpc_output(answer: bytes) -> np.ndarray:
    from tf2aif.image.server.grpc_messages import message

    response = message("ModelInferResponse").FromString(answer)
    output = response.outputs[0]
    if response.raw_output_contents:
        values = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    else:
        values = np.asarray(output.contents.fp32_contents, dtype=np.float32)
    return values.reshape(list(output.shape))


GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def grpc_call(port: int, body: bytes) -> bytes:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
        return channel.unary_unary(GRPC_INFER)(body, timeout=60)


def grpc_latency(port: int, body: bytes, count: int, warm: int = 20) -> tuple[float, float]:
    import grpc

    timings = []
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(GRPC_INFER)
        for i in range(count + warm):
            started = time.perf_counter()
            call(body, timeout=60)
            if i >= warm:
                timings.append(time.perf_counter() - started)
    return bench.percentiles(timings)


def grpc_throughput(port: int, body: bytes, seconds: float, concurrency: int) -> float:
    """Calls per second with `concurrency` calls in flight: each answer's callback sends the
    next call until the time is up. Raises on any status but OK."""
    import grpc

    lock, finished = threading.Lock(), threading.Event()
    done, live, failures = 0, concurrency, []
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(GRPC_INFER)
        deadline = time.perf_counter() + seconds

        def send() -> None:
            call.future(body, timeout=60).add_done_callback(answered)

        def answered(future: grpc.Future) -> None:
            nonlocal done, live
            error = future.exception()
            with lock:
                if error is None:
                    done += 1
                else:
                    failures.append(error)
                more = error is None and time.perf_counter() < deadline
                if not more:
                    live -= 1
                    if live == 0:
                        finished.set()
            if more:
                send()

        started = time.perf_counter()
        for _ in range(concurrency):
            send()
        finished.wait(seconds + 120)
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} gRPC calls failed: {failures[0]}")
    return done / elapsed


def client_cpu() -> float:
    """CPU seconds of this process (every thread) and of its finished children (wrk)."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def in_process_latency(artifact: Path, array: np.ndarray, cpus: bench.Cpus, count: int):
    """onnxruntime called directly, on the server's CPU, with the servers' session settings."""
    import onnxruntime as ort

    with bench.pinned(cpus.server):
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            str(_onnx_file(artifact)), options, providers=["CPUExecutionProvider"]
        )
        feed = {session.get_inputs()[0].name: array}
        timings = []
        for i in range(count + 20):
            started = time.perf_counter()
            session.run(None, feed)
            if i >= 20:
                timings.append(time.perf_counter() - started)
    return bench.percentiles(timings)


# ---- one model --------------------------------------------------------------------------------


def starters(args: argparse.Namespace) -> tuple[dict[str, Callable], list[str]]:
    """Server name -> start(artifact, work, cpus, grpc_port); and notes on the ones skipped."""
    chosen: dict[str, Callable] = {"tf2aif": start_tf2aif}
    notes = []
    if args.kserve_python.is_file():
        chosen["kserve"] = lambda a, w, c, g=0: start_kserve(a, w, c, args.kserve_python, g)
    else:
        notes.append(f"kserve skipped: no interpreter at {args.kserve_python}")
    if args.mlserver.is_file():
        chosen["mlserver"] = lambda a, w, c, g=0: start_mlserver(a, w, c, args.mlserver, False, g)
        chosen["mlserver-batch"] = lambda a, w, c, g=0: start_mlserver(
            a, w, c, args.mlserver, True, g
        )
    else:
        notes.append(f"mlserver skipped: no executable at {args.mlserver}")
    return chosen, notes


def measure_model(model: str, args: argparse.Namespace, cpus: bench.Cpus) -> list[Result]:
    artifact = bench.make_artifacts(args.work, model, ["onnxruntime"])["onnxruntime"]
    work = args.work / model / "others"
    work.mkdir(parents=True, exist_ok=True)
    body, headers, array = json_request(artifact)
    grpc_body = grpc_request(artifact, array)
    expected = reference_output(artifact, array)
    protocols = args.protocols.split(",")
    chosen, _ = starters(args)
    servers: dict[str, bench.Process] = {}
    grpc_ports: dict[str, int] = {}
    count = bench.LATENCY_REQUESTS[model]
    results = []
    if "grpc" in protocols:
        p50, p99 = in_process_latency(artifact, array, cpus, count)
        results.append(
            Result(
                model=model,
                protocol="in-process",
                server="onnxruntime",
                p50_ms=p50,
                p99_ms=p99,
                rps=0.0,
                rps_runs=[],
                cpu_us=0.0,
                client_share=0.0,
                note="runtime called directly on the server's CPU",
            )
        )
    try:
        for name, start in chosen.items():  # one at a time, so start-ups do not overlap
            grpc_ports[name] = free_port() if "grpc" in protocols else 0
            servers[name] = start(artifact, work, cpus.server, grpc_ports[name])
            try:
                if "json" in protocols:
                    check_answer(servers[name], body, headers, expected)
                if "grpc" in protocols:
                    _wait_grpc(grpc_ports[name], grpc_body)
                    got = grpc_output(grpc_call(grpc_ports[name], grpc_body))
                    np.testing.assert_allclose(got, expected, atol=1e-4)
            except Exception as exc:
                raise RuntimeError(f"{name} answered wrongly: {exc}") from exc
        latency: dict[tuple[str, str], tuple[float, float]] = {}
        runs: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        client: dict[tuple[str, str], list[float]] = {}
        with bench.pinned(cpus.client):
            for protocol in protocols:
                for name, server in servers.items():
                    key = (protocol, name)
                    runs[key], cpu[key], client[key] = [], [], []
                    wait_idle(servers.values())
                    if protocol == "json":
                        latency[key] = bench.sequential_latency(server, body, headers, count)
                        bench.throughput(server, body, headers, 1, bench.CONCURRENCY)  # warm
                    else:
                        latency[key] = grpc_latency(grpc_ports[name], grpc_body, count)
                        grpc_throughput(grpc_ports[name], grpc_body, 1, bench.CONCURRENCY)
            names = list(servers)
            for round_index in range(args.rounds):
                # each round starts with another server, so none is always measured first
                turn = round_index % len(names)
                for protocol in protocols:
                    for name in names[turn:] + names[:turn]:
                        server = servers[name]
                        wait_idle(servers.values())
                        cpu_before = process_tree_cpu(server.process.pid) or 0.0
                        client_before = client_cpu()
                        started = time.perf_counter()
                        if protocol == "json":
                            rate = bench.throughput(
                                server, body, headers, args.seconds, bench.CONCURRENCY
                            )
                        else:
                            rate = grpc_throughput(
                                grpc_ports[name], grpc_body, args.seconds, bench.CONCURRENCY
                            )
                        elapsed = time.perf_counter() - started
                        cpu_used = (process_tree_cpu(server.process.pid) or 0.0) - cpu_before
                        runs[protocol, name].append(rate)
                        cpu[protocol, name].append(cpu_used / (rate * elapsed) * 1e6)
                        client[protocol, name].append((client_cpu() - client_before) / elapsed)
    finally:
        for server in servers.values():
            server.stop()
    return results + [
        Result(
            model=model,
            protocol=protocol,
            server=name,
            p50_ms=latency[protocol, name][0],
            p99_ms=latency[protocol, name][1],
            rps=statistics.median(runs[protocol, name]),
            rps_runs=runs[protocol, name],
            cpu_us=statistics.median(cpu[protocol, name]),
            client_share=statistics.median(client[protocol, name]),
            note=f"load average {os.getloadavg()[0]:.1f}",
        )
        for protocol in protocols
        for name in servers
    ]


def wait_idle(servers: Iterable[bench.Process], timeout: float = 10) -> None:
    """Wait until no server uses more than 5% of a core: one still working through the backlog
    of the previous measurement (MLServer's queued JSON requests take seconds) would otherwise
    take CPU from the next server measured on the same core."""
    pids = [server.process.pid for server in servers]
    deadline = time.monotonic() + timeout
    before = sum(process_tree_cpu(pid) or 0.0 for pid in pids)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = sum(process_tree_cpu(pid) or 0.0 for pid in pids)
        if now - before < 0.01:
            return
        before = now


def _wait_grpc(port: int, body: bytes, timeout: float = 60) -> None:
    """The HTTP side is ready; a server may open its gRPC port a moment later."""
    import grpc

    deadline = time.monotonic() + timeout
    while True:
        try:
            grpc_call(port, body)
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def table(results: list[Result]) -> str:
    lines = [
        "| model | protocol | server | p50 / p99 ms (concurrency 1) | p50 vs tf2aif "
        "| req/s (concurrency 32) | req/s vs tf2aif | runs | server CPU us/req | client % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ours = {(r.model, r.protocol): r for r in results if r.server == "tf2aif"}
    for r in results:
        base = ours.get((r.model, r.protocol)) or ours.get((r.model, "grpc"))
        p50_ratio = f"{r.p50_ms / base.p50_ms:.2f}x" if base else "-"
        if r.rps:
            rate = f"{r.rps:.0f}"
            rate_ratio = f"{r.rps / base.rps:.2f}x" if base else "-"
        else:
            rate, rate_ratio = "-", "-"
        lines.append(
            f"| {r.model} | {r.protocol} | {r.server} | {r.p50_ms:.3f} / {r.p99_ms:.3f} "
            f"| {p50_ratio} | {rate} | {rate_ratio} "
            f"| {', '.join(f'{x:.0f}' for x in r.rps_runs)} | {r.cpu_us:.0f} "
            f"| {100 * r.client_share:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bench.common_arguments(parser, seconds=5)
    parser.add_argument("--protocols", default="json,grpc", help="json, grpc or both")
    parser.add_argument("--kserve-python", type=Path, default=Path("/work/venv-kserve/bin/python"))
    parser.add_argument("--mlserver", type=Path, default=Path("/work/venv-mlserver/bin/mlserver"))
    args = parser.parse_args()
    cpus = bench.Cpus.split(args.pin)
    _, notes = starters(args)
    print(
        f"{cpus.describe()}; load client: {bench.load_client()} (JSON), grpc channel futures (gRPC); "
        f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        *notes,
        sep="\n",
        flush=True,
    )
    results: list[Result] = []
    for model in args.models.split(","):
        results += measure_model(model, args, cpus)
        print(table([r for r in results if r.model == model]), flush=True)
    bench.report(table(results), results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
