"""What decoding an infer request's tensor costs, per MB of request body, by method.

    PYTHONPATH=builder python benchmarks/json_decode.py [--repeat 30] [--json FILE]

Inputs: an FP32 tensor of MobileNetV2's size (1x224x224x3) and of the digits model's (1x8x8x1),
random values in [0, 1) written the way clients write them (a flat `data` list of floats).
Methods:
  tf2aif JSON           parse_infer_request: simdjson reads the float data into a buffer
  tf2aif, reference     parse_infer_request(fast=False): orjson, then np.array(list)
  orjson -> np.asarray  the bare minimum with orjson: loads, then np.asarray(data, float32)
  numpy text parse      np.fromstring(span, sep=",") on the data array's text (no JSON parser)
  binary extension      parse_infer_request of a JSON header + raw bytes (no text at all)
Each is run --repeat times; the fastest run counts (on a shared machine the median mostly
measures the neighbours), as ms and as ms per MB of that body; the median is shown beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import orjson

from tf2aif.server.protocol import parse_infer_request

SHAPES = {"mobilenetv2": (1, 224, 224, 3), "digits": (1, 8, 8, 1)}


def bodies(shape: tuple[int, ...]) -> tuple[bytes, bytes, int]:
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    tensor = {"name": "x", "datatype": "FP32", "shape": list(shape)}
    text = orjson.dumps({"inputs": [tensor | {"data": array.reshape(-1).tolist()}]})
    header = orjson.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": array.nbytes}}]})
    return text, header + array.tobytes(), len(header)


def best_and_median_ms(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    function()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000, statistics.median(timings) * 1000


def methods(text: bytes, binary: bytes, header_length: int) -> dict[str, tuple[bytes, Callable]]:
    start = text.index(b'"data":[') + len(b'"data":[')
    span = text[start : text.index(b"]", start)]

    def numpy_text() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.fromstring(span, dtype=np.float32, sep=",")

    return {
        "tf2aif JSON": (text, lambda: parse_infer_request(text)),
        "tf2aif, reference decoder": (text, lambda: parse_infer_request(text, fast=False)),
        "orjson -> np.asarray": (
            text,
            lambda: np.asarray(orjson.loads(text)["inputs"][0]["data"], dtype=np.float32),
        ),
        "numpy text parse": (text, numpy_text),
        "binary extension": (binary, lambda: parse_infer_request(binary, header_length)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", type=str)
    args = parser.parse_args()
    rows = []
    print("| tensor | method | body MB | best ms | best ms per MB | vs tf2aif JSON | median ms |")
    print("|---|---|---|---|---|---|---|")
    for model, shape in SHAPES.items():
        text, binary, header_length = bodies(shape)
        timed = {
            name: (len(body), *best_and_median_ms(function, args.repeat))
            for name, (body, function) in methods(text, binary, header_length).items()
        }
        ours = timed["tf2aif JSON"][1]
        for name, (size, ms, median) in timed.items():
            mb = size / 1e6
            rows.append({"tensor": model, "method": name, "mb": mb, "ms": ms, "median_ms": median})
            print(
                f"| {model} {list(shape)} | {name} | {mb:.3f} | {ms:.3f} | {ms / mb:.2f} "
                f"| {ms / ours:.2f}x | {median:.3f} |"
            )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
