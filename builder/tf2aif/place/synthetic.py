"""Synthetic heterogeneous clusters and applications for evaluating placement policies.

Model catalogue (service ms, processing ms, server memory MiB) -- where the figures come from:

* cpu: measured on this project's build machine (2-vCPU AMD EPYC, AVX2) with one TFLite fp32
  server per model, one inference thread, one request at a time
  (`benchmarks/placement_validate.py`): MobileNetV2 1.0/224 ~11 ms, 0.5/160 ~1.5 ms,
  0.35/128 ~1.3 ms, digits ~0.4 ms including HTTP handling; resident memory 62-98 MiB.
  resnet50 and ssd are scaled from MobileNetV2 by their FLOP ratio (illustrative).
* arm: cpu x 2.5 (illustrative: no arm64 machine here).
* gpu, agx: illustrative (no public batch-1 figure for these exact models/runtimes was found).
* alveo: resnet50 int8 2 ms batch-1 (public: Xilinx ResNet50-PYNQ dataflow accelerator on an
  Alveo U250, "batch-1 latency 2 ms, max 2000 FPS"); other models and the 20 ms model-switch
  overhead are illustrative, the latter of the order the edgeTPU measurements show (19-25 ms).

Apps: model uniform over the catalogue; rate log-normal (median 8 req/s, sigma 1, at most 80);
mean SLO = U(1.5, 6) x the model's isolated cpu latency, i.e. some SLOs only an accelerator or
a lightly loaded CPU can meet.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from .inputs import Accelerator, App, ModelSpec, Node, Profile

__all__ = ["NODE_TYPES", "catalogue", "synthetic_apps", "synthetic_cluster"]

# model -> platform -> (variant runtime/precision, service ms, scv of service, processing ms, memory MiB)
_CATALOGUE = {
    "digits": {
        "cpu": ("tflite/fp32", 0.4, 0.3, 0.0, 62),
        "arm": ("tflite/fp32", 1.0, 0.3, 0.0, 62),
        "gpu": ("tensorrt/fp16", 0.3, 0.1, 0.3, 300),
        "agx": ("tensorrt/fp16", 0.6, 0.1, 0.6, 300),
        "alveo": ("vitis-ai/int8", 0.5, 0.05, 0.3, 200),
    },
    "mobilenet-v2": {
        "cpu": ("tflite/fp32", 11.0, 0.05, 0.0, 98),
        "arm": ("tflite/fp32", 27.0, 0.05, 0.0, 98),
        "gpu": ("tensorrt/fp16", 1.2, 0.05, 1.0, 400),
        "agx": ("tensorrt/fp16", 3.0, 0.05, 2.0, 400),
        "alveo": ("vitis-ai/int8", 1.0, 0.02, 1.0, 250),
    },
    "resnet50": {
        "cpu": ("openvino/fp32", 40.0, 0.05, 0.0, 250),
        "arm": ("tflite/fp32", 100.0, 0.05, 0.0, 250),
        "gpu": ("tensorrt/fp16", 2.5, 0.05, 1.0, 600),
        "agx": ("tensorrt/int8", 6.0, 0.05, 2.0, 600),
        "alveo": ("vitis-ai/int8", 2.0, 0.02, 1.0, 300),
    },
    "ssd-mobilenet-v2": {
        "cpu": ("openvino/fp32", 25.0, 0.1, 0.0, 200),
        "arm": ("tflite/fp32", 62.0, 0.1, 0.0, 200),
        "gpu": ("tensorrt/fp16", 3.0, 0.1, 2.0, 500),
        "agx": ("tensorrt/fp16", 7.0, 0.1, 4.0, 500),
        "alveo": ("vitis-ai/int8", 4.0, 0.02, 2.0, 300),
    },
}
_SWITCH_MS = {"alveo": 20.0}

# platform -> (share of nodes, template)
NODE_TYPES = {
    "cpu": (0.4, Node(name="", platform="cpu", memory_mb=8192, cores=4)),
    "arm": (0.3, Node(name="", platform="arm", memory_mb=4096, cores=4)),
    "gpu": (
        0.1,
        Node(
            name="",
            platform="gpu",
            memory_mb=16384,
            cores=8,
            accelerator=Accelerator(name="nvidia-t4", sharing="time", memory_mb=16384),
        ),
    ),
    "agx": (
        0.1,
        Node(
            name="",
            platform="agx",
            memory_mb=16384,
            cores=8,
            accelerator=Accelerator(name="jetson-agx-xavier", sharing="time"),
        ),
    ),
    "alveo": (
        0.1,
        Node(
            name="",
            platform="alveo",
            memory_mb=16384,
            cores=8,
            accelerator=Accelerator(name="alveo-u250", sharing="exclusive"),
        ),
    ),
}


def catalogue() -> dict[str, ModelSpec]:
    models = {}
    for name, platforms in _CATALOGUE.items():
        profiles = {}
        for platform, (variant, service, scv, processing, memory) in platforms.items():
            vid = f"{platform}/{variant}"
            s = service / 1e3
            p = processing / 1e3
            profiles[vid] = Profile(
                variant=vid,
                service=s,
                service_m2=s * s * (1.0 + scv),
                processing=p,
                processing_m2=p * p * 1.2,
                memory_mb=memory,
                switch=_SWITCH_MS.get(platform, 0.0) / 1e3,
            )
        images = {
            vid: f"registry.example/tf2aif/{name}:{vid.replace('/', '-')}" for vid in profiles
        }
        models[name] = ModelSpec(name=name, profiles=profiles, images=images)
    return models


def synthetic_cluster(count: int, seed: int = 0) -> tuple[Node, ...]:
    """`count` nodes, platforms in the NODE_TYPES shares (rounded, at least one of each)."""
    rng = random.Random(seed)
    kinds = []
    for platform, (share, _) in NODE_TYPES.items():
        kinds += [platform] * max(1, round(share * count))
    rng.shuffle(kinds)
    kinds = kinds[:count]
    return tuple(replace(NODE_TYPES[k][1], name=f"{k}-{i:04d}") for i, k in enumerate(kinds))


def synthetic_apps(
    count: int, seed: int = 0, models: dict[str, ModelSpec] | None = None
) -> tuple[App, ...]:
    rng = random.Random(seed)
    models = models or catalogue()
    names = sorted(models)
    apps = []
    for i in range(count):
        model = models[rng.choice(names)]
        cpu = next(p for v, p in model.profiles.items() if v.startswith("cpu/"))
        rate = min(80.0, math.exp(rng.gauss(math.log(8.0), 1.0)))
        apps.append(
            App(
                name=f"app-{i:05d}",
                model=model.name,
                rate=round(rate, 3),
                slo=(cpu.service + cpu.processing) * rng.uniform(1.5, 6.0),
            )
        )
    return tuple(apps)
