"""Check the time-shared queueing model against real co-located inference servers.

    python benchmarks/placement_validate.py prepare WORK        # models: digits + 3 MobileNetV2 (TFLite)
    python benchmarks/placement_validate.py run WORK [--repeat 2] [--seconds 20]
    python benchmarks/placement_validate.py report WORK         # table (markdown) + plot

Servers are pinned to CPU 0 (one process per model, one request at a time, 1 inference thread);
the open-loop Poisson load generator runs pinned to CPU 1. For each server alone we measure its
service time S on CPU 0 (server CPU time per request, from /proc) and the fixed part of the
latency spent elsewhere, d = isolated latency - S (client, loopback). Prediction for a mix:
d_k + E[T_k] from tf2aif.place.queueing with the measured S moments.

The server is a minimal real HTTP server (uvicorn + starlette, TFLite). The client keeps one
keep-alive connection per server (aiohttp limit_per_host=1) and queues requests FIFO for it: the
server handles one request at a time anyway, so this is the same FCFS queue, without paying a
TCP/HTTP connection set-up on the server core for every concurrent request (which, with one
connection per in-flight request, made the servers collapse under bursts).
Run it under `chrt -f 10` on a shared machine: other users' processes on CPU 0 otherwise delay
every wake-up of the servers by milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = {  # name -> (builder, input shape)
    "digits": ("digits", (1, 8, 8, 1)),
    "mnv2-100-224": ((1.0, 224), (1, 224, 224, 3)),
    "mnv2-050-160": ((0.5, 160), (1, 160, 160, 3)),
    "mnv2-035-128": ((0.35, 128), (1, 128, 128, 3)),
}
SERVER_CPU, CLIENT_CPU = 0, 1
BASE_PORT = 18500


# ---------------------------------------------------------------- prepare (TF, run once)
def prepare(work: Path) -> None:
    import tensorflow as tf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "digits"))
    work.mkdir(parents=True, exist_ok=True)
    for name, (spec, _shape) in MODELS.items():
        target = work / f"{name}.tflite"
        if target.exists():
            continue
        if spec == "digits":
            from train import train

            train(work / "digits-savedmodel")
            converter = tf.lite.TFLiteConverter.from_saved_model(str(work / "digits-savedmodel"))
        else:
            alpha, size = spec
            model = tf.keras.applications.MobileNetV2(
                input_shape=(size, size, 3), alpha=alpha, weights=None
            )
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        target.write_bytes(converter.convert())
        print(f"wrote {target}")


# ---------------------------------------------------------------- server
def make_app(model_path: str):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    interpreter = Interpreter(model_path=model_path, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]

    # A fixed input tensor: requests carry only a small token, so the loopback transfer of a
    # 600 kB tensor does not blur the CPU work being measured.
    tensor = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)

    async def infer(request):  # async handler: requests run one at a time, in arrival order
        await request.body()
        start = time.perf_counter()
        interpreter.set_tensor(inp["index"], tensor)
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"]).tobytes()
        elapsed = time.perf_counter() - start
        return Response(
            result,
            media_type="application/octet-stream",
            headers={"x-service-seconds": f"{elapsed:.9f}"},
        )

    async def ready(request):
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[Route("/infer", infer, methods=["POST"]), Route("/v2/health/ready", ready)]
    )


def serve(model_path: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        make_app(model_path),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=3600,
    )


def start_servers(work: Path, servers: dict[str, str]) -> dict[str, tuple[subprocess.Popen, int]]:
    procs = {}
    for i, (name, model) in enumerate(servers.items()):
        port = BASE_PORT + i
        cmd = [
            "taskset",
            "-c",
            str(SERVER_CPU),
            sys.executable,
            __file__,
            "serve",
            str(work / f"{model}.tflite"),
            str(port),
        ]
        procs[name] = (subprocess.Popen(cmd, env=os.environ | {"OMP_NUM_THREADS": "1"}), port)
    return procs


def stop_servers(procs) -> None:
    for proc, _ in procs.values():
        proc.terminate()
    for proc, _ in procs.values():
        proc.wait(timeout=20)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(proc: subprocess.Popen) -> int:
    return proc.pid  # taskset execs the interpreter in place


# ---------------------------------------------------------------- load
async def wait_ready(session, port: int) -> None:
    for _ in range(600):
        try:
            async with session.get(f"http://127.0.0.1:{port}/v2/health/ready") as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} never became ready")


async def one(session, port: int, body: bytes, service: list | None = None) -> float:
    start = time.perf_counter()
    async with session.post(
        f"http://127.0.0.1:{port}/infer",
        data=body,
        headers={"content-type": "application/octet-stream"},
    ) as r:
        await r.read()
        if service is not None:
            service.append(float(r.headers["x-service-seconds"]))
    return time.perf_counter() - start


async def sequential(
    session, port: int, body: bytes, count: int, service: list | None = None
) -> list[float]:
    return [await one(session, port, body, service) for _ in range(count)]


async def poisson(
    session, port: int, body: bytes, rate: float, seconds: float, seed: int
) -> list[float]:
    rng = random.Random(seed)
    tasks, t0 = [], time.perf_counter()
    next_at = rng.expovariate(rate)
    while next_at < seconds:
        delay = t0 + next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(session, port, body)))
        next_at += rng.expovariate(rate)
    results = await asyncio.gather(*tasks)
    return results[len(results) // 10 :]  # drop the warm-up tenth


def core_busy(cpu: int) -> float:
    """Busy seconds of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + ticks[4]
            return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


async def profile(session, procs, data, count: int = 200) -> dict[str, dict]:
    """Isolated profile, one request at a time: S = request handling time on CPU 0 (the
    inference time the server reports plus the server's CPU time outside it, from /proc), d =
    the rest of the isolated latency (client, loopback)."""
    out = {}
    for name, (proc, port) in procs.items():
        await sequential(session, port, data[name], 20)  # warm up
        inference: list[float] = []
        cpu0 = cpu_seconds(server_pid(proc))
        latencies = await sequential(session, port, data[name], count, inference)
        cpu = (cpu_seconds(server_pid(proc)) - cpu0) / count
        overhead = max(cpu - statistics.fmean(inference), 0.0)  # HTTP handling on CPU 0
        service = [x + overhead for x in inference]
        mean = statistics.fmean(service)
        out[name] = {
            "service": mean,
            "service_m2": statistics.fmean(x * x for x in service),
            "latency": statistics.fmean(latencies),
            "fixed": max(statistics.fmean(latencies) - mean, 0.0),
            "http_cpu": overhead,
        }
    return out


# Server processes (name -> model): two models, each twice as separate processes. Services of
# 1.5 ms and more keep the total request rate within what the Python load generator sustains
# on one core (with MobileNetV2 0.35/128 at ~1 ms, or digits at 0.1 ms, the generator itself
# queued and the measurement was of the client, not of the servers).
SERVERS = {"a": "mnv2-100-224", "b": "mnv2-050-160", "c": "mnv2-100-224", "d": "mnv2-050-160"}
SCENARIOS = [  # (servers, total utilisation of CPU 0)
    *[(("a",), u) for u in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)],
    *[(("a", "b"), u) for u in (0.2, 0.4, 0.6, 0.8)],
    *[(("a", "b", "c"), u) for u in (0.2, 0.4, 0.6, 0.8)],
    *[(("a", "b", "c", "d"), u) for u in (0.2, 0.4, 0.6, 0.8)],
]


async def run_async(work: Path, repeat: int, seconds: float) -> list[dict]:
    import aiohttp

    os.sched_setaffinity(0, {CLIENT_CPU})
    procs = start_servers(work, SERVERS)
    data = {name: b"x" * 16 for name in SERVERS}
    rows = []
    try:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _, port in procs.values():
                await wait_ready(session, port)
            for rep in range(repeat):
                for s_index, (servers, utilisation) in enumerate(SCENARIOS):
                    # profile right before each point: the machine is shared, so its background
                    # load drifts; the prediction uses what the servers did just now, alone
                    profiles = await profile(
                        session, {n: procs[n] for n in servers}, data, count=200
                    )
                    share = utilisation / len(servers)  # equal CPU share per server
                    rates = {n: share / profiles[n]["service"] for n in servers}
                    busy0 = core_busy(SERVER_CPU)
                    ours0 = sum(cpu_seconds(p.pid) for p, _ in procs.values())
                    wall0 = time.perf_counter()
                    results = await asyncio.gather(
                        *[
                            poisson(
                                session,
                                procs[n][1],
                                data[n],
                                rates[n],
                                seconds,
                                seed=1000 * rep + 10 * s_index + k,
                            )
                            for k, n in enumerate(servers)
                        ]
                    )
                    elapsed = time.perf_counter() - wall0
                    ours = sum(cpu_seconds(p.pid) for p, _ in procs.values()) - ours0
                    # share of CPU 0 used by other processes (other users) during the point
                    background = max(core_busy(SERVER_CPU) - busy0 - ours, 0.0) / elapsed
                    for n, latencies in zip(servers, results, strict=True):
                        row = {
                            "repeat": rep,
                            "servers": len(servers),
                            "utilisation": utilisation,
                            "app": n,
                            "model": SERVERS[n],
                            "background": background,
                            "rate": rates[n],
                            "measured": statistics.fmean(latencies),
                            "count": len(latencies),
                            "profile": profiles[n],
                            "mix": {m: {"rate": rates[m], **profiles[m]} for m in servers},
                        }
                        rows.append(row)
                        keys = ("repeat", "servers", "utilisation", "app", "measured", "background")
                        print(json.dumps({k: row[k] for k in keys}), flush=True)
    finally:
        stop_servers(procs)
    (work / "validate.json").write_text(json.dumps(rows, indent=1))
    return rows


# ---------------------------------------------------------------- small real placement check
CHECK_APPS = [  # (name, server, rate as a share of that server's capacity, SLO as x its service)
    ("cam-1", "a", 0.30, 2.2),
    ("cam-2", "b", 0.15, 3.0),
    ("ocr-1", "c", 0.20, 4.0),
    ("ocr-2", "d", 0.15, 3.0),
]


async def real_check(work: Path, seconds: float) -> dict:
    """Place CHECK_APPS on one 1-core node with first-fit and knapsack, run what each hosts
    on the real servers at the apps' rates, and compare measured latency with the SLOs."""
    import aiohttp

    from tf2aif.place.inputs import App, ModelSpec, Node, Profile
    from tf2aif.place.policy import place

    os.sched_setaffinity(0, {CLIENT_CPU})
    procs = start_servers(work, SERVERS)
    data = {name: b"x" * 16 for name in SERVERS}
    out = {}
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=1)
        ) as session:
            for _, port in procs.values():
                await wait_ready(session, port)
            profiles = await profile(session, procs, data, count=200)
            models, apps = {}, []
            for name, server, share, slo in CHECK_APPS:
                p = profiles[server]
                prof = Profile(
                    variant="cpu/tflite/fp32",
                    service=p["service"],
                    service_m2=p["service_m2"],
                    memory_mb=100,
                )
                models[server] = ModelSpec(
                    name=server, profiles={prof.variant: prof}, images={prof.variant: server}
                )
                apps.append(
                    App(name=name, model=server, rate=share / p["service"], slo=slo * p["service"])
                )
            node = Node(name="cpu0", platform="cpu", memory_mb=4096, cores=1)
            for policy in ("first-fit", "knapsack"):
                placement = place(apps, models, [node], policy=policy)
                hosted = [a for a in apps if a.name in {x.app for x in placement.assignments}]
                results = await asyncio.gather(
                    *[
                        poisson(session, procs[a.model][1], data[a.model], a.rate, seconds, seed=i)
                        for i, a in enumerate(hosted)
                    ]
                )
                predicted = {x.app: x.mean for x in placement.assignments}
                out[policy] = [
                    {
                        "app": a.name,
                        "rate": a.rate,
                        "slo_ms": a.slo * 1e3,
                        "predicted_ms": predicted[a.name] * 1e3,
                        "measured_ms": (statistics.fmean(r) - profiles[a.model]["fixed"]) * 1e3,
                    }
                    for a, r in zip(hosted, results, strict=True)
                ]
                out[policy + "-unplaced"] = [u for u, _ in placement.unplaced]
                print(
                    policy,
                    json.dumps(out[policy]),
                    "unplaced:",
                    out[policy + "-unplaced"],
                    flush=True,
                )
    finally:
        stop_servers(procs)
    (work / "realcheck.json").write_text(json.dumps(out, indent=1))
    return out


# ---------------------------------------------------------------- report
def predict(row: dict, model: str) -> float:
    from tf2aif.place.queueing import Load, shared_device

    mix = row["mix"]
    names = list(mix)
    loads = [
        Load(rate=mix[n]["rate"], mean=mix[n]["service"], m2=mix[n]["service_m2"]) for n in names
    ]
    prediction = shared_device(loads, 1, model)[names.index(row["app"])]
    return row["profile"]["fixed"] + prediction.mean


def report(work: Path) -> None:
    rows = json.loads((work / "validate.json").read_text())
    for row in rows:
        row["fcfs-ps"] = predict(row, "fcfs-ps")
        row["ps"] = predict(row, "ps")
    print(
        "| servers | utilisation | app | rate req/s | measured ms (runs) | predicted ms fcfs-ps | error | predicted ms ps | error |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["servers"], row["utilisation"], row["app"]), []).append(row)
    errors = {"fcfs-ps": [], "ps": []}
    for (servers, utilisation, app), runs in groups.items():
        measured = [r["measured"] * 1e3 for r in runs]
        cells = []
        for model in ("fcfs-ps", "ps"):
            errs = [(r[model] / r["measured"] - 1) * 100 for r in runs]
            errors[model].extend(abs(e) for e in errs)
            cells.append(
                f"{statistics.fmean(r[model] for r in runs) * 1e3:.2f} | {' / '.join(f'{e:+.0f}%' for e in errs)}"
            )
        print(
            f"| {servers} | {utilisation:.1f} | {app} | {statistics.fmean(r['rate'] for r in runs):.1f} | "
            f"{' / '.join(f'{m:.2f}' for m in measured)} | {cells[0]} | {cells[1]} |"
        )
    for model, errs in errors.items():
        print(
            f"\n{model}: |relative error| median {statistics.median(errs):.1f}%, "
            f"p90 {sorted(errs)[int(0.9 * len(errs))]:.1f}%, worst {max(errs):.1f}% over {len(errs)} points"
        )
    plot(rows, Path(__file__).resolve().parents[1] / "docs" / "img" / "placement-validation.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    markers = {1: "o", 2: "s", 3: "^", 4: "D"}
    for servers, marker in markers.items():
        sel = [r for r in rows if r["servers"] == servers]
        ax.scatter(
            [r["measured"] * 1e3 for r in sel],
            [r["fcfs-ps"] * 1e3 for r in sel],
            marker=marker,
            label=f"{servers} server(s), fcfs-ps",
            alpha=0.8,
        )
    sel = rows
    ax.scatter(
        [r["measured"] * 1e3 for r in sel],
        [r["ps"] * 1e3 for r in sel],
        marker="x",
        color="grey",
        label="plain PS formula",
        alpha=0.5,
    )
    top = max(max(r["measured"], r["fcfs-ps"]) for r in rows) * 1e3 * 1.1
    ax.plot([0.1, top], [0.1, top], "k--", lw=0.8)
    ax.plot([0.1, top], [0.1 * 1.25, top * 1.25], "k:", lw=0.6)
    ax.plot([0.1, top], [0.1 * 0.75, top * 0.75], "k:", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured mean latency (ms)")
    ax.set_ylabel("predicted mean latency (ms)")
    ax.set_title("Co-located servers on one core: predicted vs measured\n(dotted: +/-25%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare").add_argument("work", type=Path)
    p = sub.add_parser("serve")
    p.add_argument("model")
    p.add_argument("port", type=int)
    p = sub.add_parser("run")
    p.add_argument("work", type=Path)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0)
    sub.add_parser("report").add_argument("work", type=Path)
    p = sub.add_parser("check")
    p.add_argument("work", type=Path)
    p.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare(args.work)
    elif args.cmd == "serve":
        serve(args.model, args.port)
    elif args.cmd == "run":
        asyncio.run(run_async(args.work, args.repeat, args.seconds))
    elif args.cmd == "check":
        asyncio.run(real_check(args.work, args.seconds))
    else:
        report(args.work)


if __name__ == "__main__":
    main()
