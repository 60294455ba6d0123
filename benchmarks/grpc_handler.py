"""What tf2aif's own gRPC ModelInfer handler costs per request, without any transport.

    PYTHONPATH=builder python benchmarks/grpc_handler.py ARTIFACT [--calls 20000] [--cpu 1]

Loads the artifact as the server does (ModelServer, warm-up, inline path), then awaits
`InferenceServicer.ModelInfer` on a serialized one-row ModelInferRequest in an event loop:
parsing the request bytes, decoding and checking the tensor, the runtime call, building and
serializing the answer, and the metrics. The runtime call alone is timed the same way beside it,
so the handler's own share is the difference. Compare with the server CPU per request that
benchmarks/server_vs_others.py reports over gRPC: the rest is grpcio's transport.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "builder"))

from tf2aif.image.server import grpc_service  # noqa: E402
from tf2aif.image.server.backends.base import zeros_for  # noqa: E402
from tf2aif.image.server.grpc_messages import message  # noqa: E402
from tf2aif.image.server.model import ModelServer  # noqa: E402
from tf2aif.image.server.options import ServerOptions  # noqa: E402


class _Context:
    async def abort(self, code, details):  # a failed call ends the measurement
        raise RuntimeError(f"{code}: {details}")


def _request(model: ModelServer) -> bytes:
    inputs = zeros_for(model.info.inputs, 1)
    request = message("ModelInferRequest")(model_name=model.name)
    for spec in model.info.inputs:
        array = np.random.default_rng(0).random(inputs[spec.name].shape).astype(np.float32)
        request.inputs.add(name=spec.name, datatype=spec.datatype, shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    return request.SerializeToString()


async def _handler_seconds(model: ModelServer, wire: bytes, calls: int) -> float:
    servicer, context = grpc_service.InferenceServicer(model), _Context()
    parse = message("ModelInferRequest").FromString
    for _ in range(calls // 10):  # warm-up
        await servicer.ModelInfer(parse(wire), context)
    started = time.perf_counter()
    for _ in range(calls):
        (await servicer.ModelInfer(parse(wire), context)).SerializeToString()
    return (time.perf_counter() - started) / calls


def _runtime_seconds(model: ModelServer, calls: int) -> float:
    assert model.backend is not None
    inputs = zeros_for(model.info.inputs, 1)
    started = time.perf_counter()
    for _ in range(calls):
        model.backend.run(inputs)
    return (time.perf_counter() - started) / calls


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--cpu", type=int, default=1, help="the CPU to run on (as the server)")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    model = ModelServer(ServerOptions(artifact_dir=args.artifact, threads=1))
    model.start()
    model.wait_loaded(300)
    if not model.ready:
        print(f"the model did not load: {model.error}", file=sys.stderr)
        return 1
    grpc_service.warm_inline(model)
    handler = asyncio.run(_handler_seconds(model, _request(model), args.calls))
    runtime = _runtime_seconds(model, args.calls)
    print(f"inline rows {model.inline_rows}; {args.calls} calls on CPU {args.cpu}")
    print(f"handler (ModelInfer, no transport): {handler * 1e6:.1f} us per request")
    print(f"runtime call alone:                 {runtime * 1e6:.1f} us per request")
    print(f"handler's own share:                {(handler - runtime) * 1e6:.1f} us per request")
    model.stop(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
