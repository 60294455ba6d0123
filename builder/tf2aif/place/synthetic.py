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

import csv
import io
import math
import random
from dataclasses import replace
from importlib import resources

from .inputs import Accelerator, App, ModelSpec, Node, Profile

__all__ = ["NODE_TYPES", "catalogue", "synthetic_apps", "synthetic_cluster"]

# One row per (model, platform): the variant (runtime/precision) it runs, the mean service and
# processing times (ms), the squared coefficient of variation of the service time, and the
# server's memory (MiB). Data, not code: the figures' sources are in the module docstring.
CATALOGUE_FILE = "catalogue.csv"
_SWITCH_MS = {"alveo": 20.0}


def _accelerated(platform: str, accelerator: Accelerator) -> Node:
    """An accelerated node template: 8 cores, 16 GiB beside its accelerator."""
    return Node(name="", platform=platform, memory_mb=16384, cores=8, accelerator=accelerator)


# platform -> (share of nodes, template)
NODE_TYPES = {
    "cpu": (0.4, Node(name="", platform="cpu", memory_mb=8192, cores=4)),
    "arm": (0.3, Node(name="", platform="arm", memory_mb=4096, cores=4)),
    "gpu": (
        0.1,
        _accelerated("gpu", Accelerator(name="nvidia-t4", sharing="time", memory_mb=16384)),
    ),
    "agx": (0.1, _accelerated("agx", Accelerator(name="jetson-agx-xavier", sharing="time"))),
    "alveo": (0.1, _accelerated("alveo", Accelerator(name="alveo-u250", sharing="exclusive"))),
}


def catalogue() -> dict[str, ModelSpec]:
    """The synthetic models, one profile per platform, from catalogue.csv."""
    profiles: dict[str, dict[str, Profile]] = {}
    text = resources.files(__package__).joinpath(CATALOGUE_FILE).read_text()
    for row in csv.DictReader(io.StringIO(text)):
        vid = f"{row['platform']}/{row['variant']}"
        s = float(row["service_ms"]) / 1e3
        p = float(row["processing_ms"]) / 1e3
        profiles.setdefault(row["model"], {})[vid] = Profile(
            variant=vid,
            service=s,
            service_m2=s * s * (1.0 + float(row["service_scv"])),
            processing=p,
            processing_m2=p * p * 1.2,
            memory_mb=int(row["memory_mib"]),
            switch=_SWITCH_MS.get(row["platform"], 0.0) / 1e3,
        )
    return {
        name: ModelSpec(
            name=name,
            profiles=found,
            images={v: f"registry.example/tf2aif/{name}:{v.replace('/', '-')}" for v in found},
        )
        for name, found in profiles.items()
    }


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
