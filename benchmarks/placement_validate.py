"""Check the time-shared queueing model against real co-located tf2aif servers.

    python benchmarks/placement_validate.py prepare WORK     # MobileNetV2 variants -> TFLite artifacts
    python benchmarks/placement_validate.py run WORK [--repeat 2] [--seconds 20]
    python benchmarks/placement_validate.py check WORK       # the small real placement check
    python benchmarks/placement_validate.py report WORK      # table (markdown) + plot

`prepare` converts Keras MobileNetV2 models (weights=None) with tf2aif's own converter
(`tf2aif.image.convert.run_conversion`, TFLite fp32). `run` starts one real tf2aif server
(`python -m tf2aif.image.server`) per application, all pinned to CPU 0, each with one inference
thread and batching off (so each is one FCFS server process, what the fcfs-ps model assumes),
and drives them with tf2aif's own open-loop Poisson load generator (`tf2aif.bench.load`),
pinned to CPU 1, with OIP binary-tensor requests carrying a real input tensor.

Service time S of each server, measured alone right before each point: the server process's
CPU seconds per request (the sum over its threads of /proc/<pid>/task/*/schedstat, the
scheduler's own nanosecond count, over 200 requests) for the mean, and
E[S^2] = mean^2 + Var(isolated latency) for the second moment. The rest of the isolated
latency, d = mean latency - S, is time spent outside CPU 0 (client, loopback): the prediction
for a mix is d_k + E[T_k] from tf2aif.place.queueing.shared_device(..., cores=1).
Servers and client run at nice -15 (normal time-sharing, not a real-time class, which would
stop the kernel from time-slicing the servers).

One module, over 400 lines on purpose: one experiment (place, deploy real servers, measure,
compare), read top to bottom; placement and the bench client come from tf2aif itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODELS = {  # name -> (MobileNetV2 alpha, input size)
    "mnv2-100-224": (1.0, 224),
    "mnv2-050-160": (0.5, 160),
    "mnv2-035-128": (0.35, 128),
}
SERVER_CPU, CLIENT_CPU = 0, 1
BASE_PORT = 18500
NICE = -15


# ---------------------------------------------------------------- prepare (TF, run once)
def prepare(work: Path) -> None:
    import tensorflow as tf

    from tf2aif.image.convert import ConvertSpec, run_conversion

    work.mkdir(parents=True, exist_ok=True)
    for name, (alpha, size) in MODELS.items():
        artifact = work / name
        if (artifact / "tf2aif-artifact.json").is_file():
            continue
        model = tf.keras.applications.MobileNetV2(
            input_shape=(size, size, 3), alpha=alpha, weights=None
        )
        model.export(str(work / "src" / name))
        spec = ConvertSpec(
            name=name.replace("-", ""),
            runtime="tflite",
            precision="fp32",
            backend="tflite",
            model=f"src/{name}",
        )
        run_conversion(spec, root=work, out=artifact)
        print(f"wrote {artifact}")


# ---------------------------------------------------------------- servers
def start_servers(work: Path, servers: dict[str, str]) -> dict[str, tuple[subprocess.Popen, int]]:
    procs = {}
    for i, (name, model) in enumerate(servers.items()):
        port = BASE_PORT + i
        cmd = ["taskset", "-c", str(SERVER_CPU), "nice", "-n", str(NICE), sys.executable]
        cmd += [
            "-m",
            "tf2aif.image.server",
            str(work / model),
            "--port",
            str(port),
            "--grpc-port",
            "0",
        ]
        cmd += ["--max-batch-size", "1", "--no-adaptive-batching", "--threads", "1"]
        cmd += ["--workers", "1", "--log-level", "warning"]
        procs[name] = (subprocess.Popen(cmd, env=os.environ | {"OMP_NUM_THREADS": "1"}), port)
    return procs


def stop_servers(procs) -> None:
    for proc, _ in procs.values():
        proc.terminate()
    for proc, _ in procs.values():
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """CPU time of a server process, to the nanosecond (tf2aif's own schedstat reading: the
    10 ms ticks of /proc/<pid>/stat are too coarse for 60 requests of 1.5 ms)."""
    from tf2aif.bench.targets import process_tree_cpu

    seconds = process_tree_cpu(pid)
    if seconds is None:
        raise RuntimeError(f"cannot read the CPU time of process {pid}")
    return seconds


def core_busy(cpu: int) -> float:
    """Busy seconds of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + ticks[4]
            return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


# ---------------------------------------------------------------- load (tf2aif.bench)
class Target:
    """One running server: its HTTP client and a binary OIP request with a real input tensor."""

    def __init__(self, client, payload, pid: int) -> None:
        self.client, self.payload, self.pid = client, payload, pid


async def open_targets(stack, work: Path, procs) -> dict[str, Target]:
    import numpy as np

    from tf2aif.bench.clients import open_client
    from tf2aif.bench.payloads import encode_infer
    from tf2aif.image.artifact import read_artifact

    targets = {}
    for name, (proc, port) in procs.items():
        info = read_artifact(work / SERVERS[name])
        client = await stack.enter_async_context(
            open_client("aiohttp", f"http://127.0.0.1:{port}", timeout_s=60, max_connections=64)
        )
        await wait_ready(client, port)
        spec = info.inputs[0]
        shape = [1 if d < 0 else d for d in spec.shape]
        tensor = np.random.default_rng(0).random(shape, dtype=np.float32)
        payload = encode_infer(info.name, {spec.name: tensor}, binary=True)
        targets[name] = Target(client, payload, proc.pid)
    return targets


async def wait_ready(client, port: int) -> None:
    for _ in range(1200):
        try:
            status, _ = await client.get("/v2/health/ready")
            if status == 200:
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} never became ready")


def settings(seconds: float, requests: int | None = None):
    from tf2aif.bench.load import LoadSettings

    # run for the whole period: no early stop on stability
    return LoadSettings(warmup_s=1.0, window_s=1.0, stable_windows=10**9, max_duration_s=seconds,
                        max_requests=requests, timeout_s=60.0, max_connections=64)  # fmt: skip


GAPS = (0.005, 0.02, 0.08)  # idle time before each spaced request, s


async def _cpu_per_request(target: Target, load, count: int) -> tuple[float, list[float]]:
    """(server CPU seconds per request, latencies) of `count` requests under `load`."""
    from tf2aif.bench.load import run_load

    async def cpu(pid=target.pid) -> float:  # read when the measurement starts and ends
        return cpu_seconds(pid)

    m = await run_load(target.client, [target.payload], load, settings(120, count), probe=cpu)
    first, last = m.probes
    return (last - first) / len(m.latencies_ms), [x / 1e3 for x in m.latencies_ms]


async def _spaced(target: Target, gap: float, count: int) -> tuple[float, list[float]]:
    """Requests sent one at a time, each after `gap` s of idleness: the cold service."""
    latencies = []
    before = cpu_seconds(target.pid)
    for _ in range(count):
        await asyncio.sleep(gap)
        start = time.perf_counter()
        await target.client.send(target.payload)
        latencies.append(time.perf_counter() - start)
    return (cpu_seconds(target.pid) - before) / count, latencies


async def profile(targets: dict[str, Target], count: int = 200) -> dict[str, dict]:
    """Each server alone. Warm service S: server CPU per request while requests queue back to
    back (closed loop, 2 in flight); its variance from one-at-a-time latencies. Cold starts:
    CPU per request after 5, 20 and 80 ms of idleness, fitted as S + delta (1 - e^(-gap/tau)).
    d: the latency of spaced requests not spent on the server's CPU (client, loopback)."""
    from tf2aif.bench.load import Load
    from tf2aif.bench.stats import fit_cold_start

    out = {}
    for name, target in targets.items():
        warm, _ = await _cpu_per_request(target, Load(concurrency=2), count)
        _, one_at_a_time = await _cpu_per_request(target, Load(concurrency=1), count // 2)
        spaced_count = 60
        points, fixed = [], []
        for gap in GAPS:
            cpu, latencies = await _spaced(target, gap, spaced_count)
            points.append((gap, cpu))
            fixed.append(statistics.fmean(latencies) - cpu)
        delta, tau = fit_cold_start(warm, points)
        out[name] = {
            "service": warm,
            "service_m2": warm**2 + statistics.pvariance(one_at_a_time),
            "cold_delta": delta,
            "cold_tau": tau,
            "cold_points": points,
            "latency": statistics.fmean(one_at_a_time),
            "fixed": max(statistics.fmean(fixed), 0.0),
        }
    return out


async def poisson(target: Target, rate: float, seconds: float, seed: int) -> dict:
    """Open-loop Poisson load on one server: the client's latencies and send lag, and the
    server's own view over the same period (requests, mean request time, CPU per request)."""
    from tf2aif.bench.load import Load, run_load

    async def server_side(target=target) -> tuple[dict, float]:
        return await infer_totals(target.client), cpu_seconds(target.pid)

    m = await run_load(
        target.client, [target.payload], Load(rate=rate, arrival="poisson", seed=seed),
        settings(seconds), probe=server_side,
    )  # fmt: skip
    errors = sum(v for k, v in m.outcomes.items() if k != "ok")
    if errors:
        print(f"  {errors} failed requests: {m.outcomes}", file=sys.stderr)
    (first, cpu0), (last, cpu1) = m.probes
    served = max(last["count"] - first["count"], 1)
    return {
        "latencies": [x / 1e3 for x in m.latencies_ms],
        "send_lag": statistics.fmean(m.send_lag_ms) / 1e3 if m.send_lag_ms else None,
        "server_time": (last["sum"] - first["sum"]) / served,
        "server_cpu": (cpu1 - cpu0) / served,
    }


async def infer_totals(client) -> dict[str, float]:
    """Count and sum of the server's own request-duration histogram for /v2 infer."""
    from tf2aif.bench.metrics import parse_samples

    _, body = await client.get("/metrics")
    family = "tf2aif_request_duration_seconds_"
    return {
        name.removeprefix(family): value
        for name, labels, value in parse_samples(body.decode())
        if name in (family + "sum", family + "count") and labels.get("endpoint") == "infer"
    }


# Server processes (name -> model): two models, each twice as separate processes.
SERVERS = {"a": "mnv2-100-224", "b": "mnv2-050-160", "c": "mnv2-100-224", "d": "mnv2-050-160"}
SCENARIOS = [  # (servers, total utilisation of CPU 0)
    *[(("a",), u) for u in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)],
    *[(("a", "b"), u) for u in (0.2, 0.4, 0.6, 0.8)],
    *[(("a", "b", "c"), u) for u in (0.2, 0.4, 0.6, 0.8)],
    *[(("a", "b", "c", "d"), u) for u in (0.2, 0.4, 0.6, 0.8)],
]


async def run_async(work: Path, repeat: int, seconds: float) -> list[dict]:
    os.sched_setaffinity(0, {CLIENT_CPU})
    os.nice(NICE)
    procs = start_servers(work, SERVERS)
    rows = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            targets = await open_targets(stack, work, procs)
            for rep in range(repeat):
                for s_index, (servers, utilisation) in enumerate(SCENARIOS):
                    # profile right before each point: the machine is shared, so its background
                    # load drifts; the prediction uses what the servers did just now, alone
                    mix = {n: targets[n] for n in servers}
                    started = time.perf_counter()
                    profiles = await profile(mix)
                    print(f"profiled {servers} in {time.perf_counter() - started:.0f} s",
                          file=sys.stderr, flush=True)  # fmt: skip
                    share = utilisation / len(servers)  # equal CPU share per server
                    rates = {n: share / profiles[n]["service"] for n in servers}
                    busy0 = core_busy(SERVER_CPU)
                    ours0 = sum(cpu_seconds(p.pid) for p, _ in procs.values())
                    wall0, client0 = time.perf_counter(), time.process_time()
                    results = await asyncio.gather(
                        *[
                            poisson(mix[n], rates[n], seconds, seed=1000 * rep + 10 * s_index + k)
                            for k, n in enumerate(servers)
                        ]
                    )
                    elapsed = time.perf_counter() - wall0
                    ours = sum(cpu_seconds(p.pid) for p, _ in procs.values()) - ours0
                    # share of CPU 0 used by other processes during the point
                    background = max(core_busy(SERVER_CPU) - busy0 - ours, 0.0) / elapsed
                    client_cpu = (time.process_time() - client0) / elapsed
                    for n, result in zip(servers, results, strict=True):
                        latencies = result.pop("latencies")
                        row = {
                            "repeat": rep,
                            "servers": len(servers),
                            "utilisation": utilisation,
                            "app": n,
                            "model": SERVERS[n],
                            "background": background,
                            "client_cpu": client_cpu,  # share of CPU 1 used by the load generator
                            **result,  # send_lag, server_time, server_cpu
                            "rate": rates[n],
                            "measured": statistics.fmean(latencies),
                            "count": len(latencies),
                            "profile": profiles[n],
                            "mix": {m: {"rate": rates[m], **profiles[m]} for m in servers},
                        }
                        rows.append(row)
                        keys = ("repeat", "servers", "utilisation", "app", "measured", "background")
                        print(json.dumps({k: row[k] for k in keys}), flush=True)
                    # saved after every point: a long run that is stopped keeps what it measured
                    (work / "validate.json").write_text(json.dumps(rows, indent=1))
    finally:
        stop_servers(procs)
    (work / "validate.json").write_text(json.dumps(rows, indent=1))
    return rows


# ---------------------------------------------------------------- small real placement check
CHECK_APPS = [  # (name, server, rate as a share of that server's capacity, SLO as x its service)
    ("cam-1", "a", 0.25, 3.0),
    ("cam-2", "b", 0.10, 4.0),
    ("ocr-1", "c", 0.15, 5.0),
    ("ocr-2", "d", 0.10, 4.0),
]
HEADROOM = 0.1  # what `tf2aif place` plans with by default


async def real_check(work: Path, seconds: float) -> dict:
    """Place CHECK_APPS on one 1-core node with first-fit and knapsack, run what each hosts
    on the real servers at the apps' rates, and compare measured latency with the SLOs."""

    from tf2aif.place.inputs import App, ModelSpec, Node, Profile
    from tf2aif.place.policy import place

    os.sched_setaffinity(0, {CLIENT_CPU})
    os.nice(NICE)
    procs = start_servers(work, SERVERS)
    out = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            targets = await open_targets(stack, work, procs)
            profiles = await profile(targets)
            models, apps = {}, []
            for name, server, share, slo in CHECK_APPS:
                p = profiles[server]
                prof = Profile(
                    variant="cpu/tflite/fp32",
                    service=p["service"],
                    service_m2=p["service_m2"],
                    memory_mb=100,
                    cold_extra=p["cold_delta"],
                    cold_tau=p["cold_tau"],
                )
                models[server] = ModelSpec(
                    name=server, profiles={prof.variant: prof}, images={prof.variant: server}
                )
                apps.append(
                    App(
                        name=name,
                        model=server,
                        rate=share / p["service"],
                        slo=slo * p["service"],
                        headroom=HEADROOM,
                    )
                )
            node = Node(name="cpu0", platform="cpu", memory_mb=4096, cores=1)
            for policy in ("first-fit", "knapsack"):
                placement = place(apps, models, [node], policy=policy)
                hosted = [a for a in apps if a.name in {x.app for x in placement.assignments}]
                runs = await asyncio.gather(
                    *[
                        poisson(targets[a.model], a.rate, seconds, seed=i)
                        for i, a in enumerate(hosted)
                    ]
                )
                results = [run["latencies"] for run in runs]
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
                print(policy, json.dumps(out[policy]), "unplaced:", out[policy + "-unplaced"])
    finally:
        stop_servers(procs)
    (work / "realcheck.json").write_text(json.dumps(out, indent=1))
    return out


# ---------------------------------------------------------------- report
def load_of(profile: dict, rate: float, cold: bool = True):
    """The queueing model's view of one server: warm service, with `cold` its cold starts."""
    from tf2aif.place.queueing import Load, with_cold_start

    load = Load(rate=rate, mean=profile["service"], m2=profile["service_m2"])
    if not cold or "cold_delta" not in profile:
        return load
    return with_cold_start(load, profile["cold_delta"], profile["cold_tau"])


def predict(row: dict, model: str, cold: bool = True, during: dict | None = None) -> float:
    """d + E[T] of `row`'s app by `model`; with `during` (server -> CPU per request measured
    during the point), the service each server really used instead of its profile."""
    from tf2aif.place.queueing import Load, shared_device, shared_device_gps

    mix = row["mix"]
    names = list(mix)
    loads = [load_of(mix[n], mix[n]["rate"], cold) for n in names]
    if during is not None:  # that CPU already holds the cold starts
        loads = [
            Load(rate=mix[n]["rate"], mean=during[n], m2=mix[n]["service_m2"] * (during[n] / mix[n]["service"]) ** 2)
            for n in names
        ]  # fmt: skip
    solve = shared_device_gps if model == "gps" else lambda x, c: shared_device(x, c, model)
    prediction = solve(loads, 1)[names.index(row["app"])]
    return row["profile"]["fixed"] + prediction.mean


PREDICTORS = {  # column -> (model, with cold starts)
    "fcfs-ps": ("fcfs-ps", True),
    "ideal GPS": ("gps", True),
    "ps, warm only": ("ps", False),
}
DURING = "fcfs-ps, CPU measured during the point"
OVERLOADED = 0.95  # measured utilisation (CPU per request under load x rate) beyond which a point is unstable


def measured_utilisation(rows: list[dict], row: dict) -> float:
    """Share of CPU 0 the servers of this point really used: rate x CPU per request, summed."""
    same = [r for r in rows if (r["repeat"], r["servers"], r["utilisation"]) == (row["repeat"], row["servers"], row["utilisation"])]  # fmt: skip
    return sum(r["rate"] * r.get("server_cpu", r["profile"]["service"]) for r in same)


def report(work: Path) -> None:
    rows = json.loads((work / "validate.json").read_text())
    for row in rows:
        row["real_utilisation"] = measured_utilisation(rows, row)
        for column, (model, cold) in PREDICTORS.items():
            row[column] = predict(row, model, cold)
        same = [r for r in rows if (r["repeat"], r["servers"], r["utilisation"]) == (row["repeat"], row["servers"], row["utilisation"])]  # fmt: skip
        during = {r["app"]: r["server_cpu"] for r in same if "server_cpu" in r}
        if len(during) == len(row["mix"]):
            row[DURING] = predict(row, "fcfs-ps", during=during)
    columns = [*PREDICTORS, *([DURING] if all(DURING in r for r in rows) else [])]
    head = " | ".join(f"predicted ms {c} | error" for c in columns)
    print(
        f"| run | servers | utilisation set / measured | app | rate req/s | measured ms | {head} |"
    )
    print("|---" * (6 + 2 * len(columns)) + "|")
    for row in rows:
        cells = " | ".join(
            f"{row[c] * 1e3:.2f} | {(row[c] / row['measured'] - 1) * 100:+.0f}%" for c in columns
        )
        print(
            f"| {row['repeat'] + 1} | {row['servers']} | "
            f"{row['utilisation']:.1f} / {row['real_utilisation']:.2f} | "
            f"{row['app']} | {row['rate']:.1f} | {row['measured'] * 1e3:.2f} | {cells} |"
        )
    stable = [r for r in rows if r["real_utilisation"] < OVERLOADED]
    print("\n| predictor | points | median abs. error | p90 | worst | under-predicted |")
    print("|---|---|---|---|---|---|")
    for column in columns:
        for label, sel in (("all", rows), (f"measured utilisation < {OVERLOADED}", stable)):
            errs = [r[column] / r["measured"] - 1 for r in sel]
            size = sorted(abs(e) for e in errs)
            print(
                f"| {column} | {label} ({len(sel)}) | {statistics.median(size):.1%} | "
                f"{size[int(0.9 * len(size))]:.1%} | {size[-1]:.1%} | "
                f"{sum(e < 0 for e in errs)} of {len(errs)} |"
            )
    plot(rows, Path(__file__).resolve().parents[1] / "docs" / "img" / "placement-validation.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    markers = {1: "o", 2: "s", 3: "^", 4: "D"}
    for servers, marker in markers.items():
        for overloaded in (False, True):
            sel = [
                r
                for r in rows
                if r["servers"] == servers and (r["real_utilisation"] >= OVERLOADED) == overloaded
            ]
            ax.scatter(
                [r["measured"] * 1e3 for r in sel],
                [r["fcfs-ps"] * 1e3 for r in sel],
                marker=marker,
                facecolors="none" if overloaded else f"C{servers - 1}",
                edgecolors=f"C{servers - 1}",
                label=None if overloaded else f"{servers} server(s), fcfs-ps",
                alpha=0.85,
            )
    ax.scatter(
        [r["measured"] * 1e3 for r in rows],
        [r["ideal GPS"] * 1e3 for r in rows],
        marker="x",
        color="grey",
        label="ideal GPS (previous model)",
        alpha=0.5,
    )
    top = max(max(r["measured"], r["fcfs-ps"]) for r in rows) * 1e3 * 1.1
    low = min(min(r["measured"], r["ideal GPS"]) for r in rows) * 1e3 * 0.8
    ax.plot([low, top], [low, top], "k--", lw=0.8)
    ax.plot([low, top], [low * 1.25, top * 1.25], "k:", lw=0.6)
    ax.plot([low, top], [low * 0.75, top * 0.75], "k:", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured mean latency (ms)")
    ax.set_ylabel("predicted mean latency (ms)")
    ax.set_title(
        "Co-located servers on one core: predicted vs measured\n"
        f"(dotted: +/-25%; hollow: measured utilisation >= {OVERLOADED})"
    )
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
    elif args.cmd == "run":
        asyncio.run(run_async(args.work, args.repeat, args.seconds))
    elif args.cmd == "check":
        asyncio.run(real_check(args.work, args.seconds))
    else:
        report(args.work)


if __name__ == "__main__":
    main()
