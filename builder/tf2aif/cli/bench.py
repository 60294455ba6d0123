"""`tf2aif bench` and `tf2aif report`: argument parsing and the rich live view only.

One module: bench's many options become one frozen BenchPlan and are checked together (an option
with no effect on the chosen target is refused); report shares the loading of results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.cli.argtypes import count, fraction, number, numbers
from tf2aif.cli.console import messages
from tf2aif.errors import BenchError, UsageError, did_you_mean

__all__ = ["BenchPlan", "Target", "add_parsers", "bench_plan", "project_profile_path"]


def add_parsers(subparsers) -> None:
    _add_bench(subparsers)
    _add_report(subparsers)


def _add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure latency and throughput of inference servers",
        description="Load one or more Open Inference Protocol servers and write JSON/CSV results.",
    )
    where = p.add_argument_group("what to measure (one kind; --artifact and --image repeat)")
    where.add_argument("--url", action="append", default=[], help="a running OIP server")
    where.add_argument("--image", action="append", default=[], help="a server image to run")
    where.add_argument("--record", type=Path, help="every successful image of a build record")
    where.add_argument(
        "--artifact",
        action="append",
        default=[],
        type=Path,
        help="a converted artifact dir, served by a `tf2aif serve` subprocess (no Docker needed)",
    )
    where.add_argument("--model", help="model name (default: from the artifact or record)")
    where.add_argument("--variant", help="label for a --url/--image run (default: the target)")
    where.add_argument("--serve-arg", action="append", default=[], help="extra `tf2aif serve` arg")
    where.add_argument(
        "--container-port", type=count(minimum=1, maximum=65535), default=8080,
        help="port the server listens on inside an --image container (default 8080)",
    )  # fmt: skip
    where.add_argument(
        "--ready-timeout", type=number(above=0), default=180.0, metavar="S",
        help="wait this long for a started server to be ready (default 180)",
    )  # fmt: skip

    load = p.add_argument_group("load")
    load.add_argument(
        "--concurrency", type=numbers(count()), help="closed loop at each of these (1,4,16)"
    )
    load.add_argument("--sweep", type=count(), metavar="N", help="closed loop at 1,2,4,... up to N")
    load.add_argument(
        "--rate", type=numbers(number(above=0)), help="open loop at these req/s (50,100)"
    )
    load.add_argument("--arrival", choices=("poisson", "constant"), default="poisson")
    load.add_argument(
        "--warmup", type=number(minimum=0), default=2.0, metavar="S",
        help="seconds of load before measuring (default 2)",
    )  # fmt: skip
    load.add_argument(
        "--window", type=number(above=0), default=2.0, metavar="S",
        help="seconds per stability window (default 2)",
    )  # fmt: skip
    load.add_argument(
        "--tolerance", type=fraction(), default=0.10,
        help="stable when the last windows' p50 and throughput agree within this share (default 0.10)",
    )  # fmt: skip
    load.add_argument(
        "--max-duration", type=number(above=0), default=30.0, metavar="S",
        help="stop a load after this many seconds (default 30)",
    )  # fmt: skip
    load.add_argument(
        "--max-requests", type=count(), metavar="N", help="stop a load after N requests"
    )
    load.add_argument(
        "--timeout", type=number(above=0), default=30.0, metavar="S", help="per request"
    )
    load.add_argument("--http-client", choices=("aiohttp", "httpx"), default="aiohttp")

    inputs = p.add_argument_group("request bodies (default: random tensors from the metadata)")
    kind = inputs.add_mutually_exclusive_group()
    kind.add_argument("--samples", metavar="MODULE.py:FUNCTION", help="manifest sample function")
    kind.add_argument(
        "--files", nargs="+", metavar="GLOB", help="raw files to the predict endpoint"
    )
    kind.add_argument(
        "--health", action="store_true", help="GET /v2/health/ready (the client's own ceiling)"
    )
    inputs.add_argument("--json-tensors", action="store_true", help="JSON data, not binary")
    inputs.add_argument("--distinct", type=count(), default=8, help="bodies to cycle (default 8)")

    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the result JSON here")
    out.add_argument("--csv", type=Path, help="write one CSV row per variant x load here")
    out.add_argument("--quiet", action="store_true", help="no live view")
    out.add_argument(
        "--profile",
        action="store_true",
        help="placement profile: E[S], E[S^2], server CPU, capacity, sustainable rate, memory"
        " (to --json, else tf2aif-profile.json next to the build record, else stdout)",
    )
    out.add_argument(
        "--profile-requests", type=count(), default=500, metavar="N",
        help="isolated requests for the profile's service time (default 500)",
    )  # fmt: skip
    p.set_defaults(func=run_bench)


def _add_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="plots, Markdown and HTML from bench results",
        description="Render bench result files (and a build record's generation times) to a folder.",
    )
    p.add_argument("results", nargs="+", type=Path, help="bench result JSON files")
    p.add_argument("--record", type=Path, help="build record, for image generation times")
    p.add_argument(
        "--baseline",
        help=f"runtime every speedup is relative to; it must have runs in the results "
        f"(default {DEFAULT_BASELINE}, when it has)",
    )
    p.add_argument("--out", type=Path, default=Path("bench-report"), help="output folder")
    p.add_argument("--title", default="tf2aif benchmark")
    p.add_argument("--img-prefix", default="", help="prefix for image links in the Markdown")
    p.set_defaults(func=run_report)


@dataclass(frozen=True, kw_only=True)
class Target:
    """One thing to measure, before anything is started."""

    kind: str  # url | image | artifact
    target: str  # the URL, image reference or artifact folder
    variant: str | None
    model: str | None
    serve_args: tuple[str, ...] = ()
    container_port: int = 8080
    ready_timeout_s: float = 180.0


@dataclass(frozen=True, kw_only=True)
class BenchPlan:
    """Everything a `tf2aif bench` invocation will do, from its options alone."""

    targets: tuple[Target, ...]
    settings: Any  # LoadSettings
    loads: tuple[Any, ...]  # Load
    inputs: Any  # InputSpec
    http_client: str
    profile: Any | None  # ProfileSettings when --profile
    json: Path | None
    csv: Path | None
    quiet: bool


# options that only mean something for some kinds of target: (option, dest, kinds)
_TARGET_ONLY = (
    ("--container-port", "container_port", ("image", "record")),
    ("--serve-arg", "serve_arg", ("artifact",)),
    ("--ready-timeout", "ready_timeout", ("image", "record", "artifact")),
    ("--model", "model", ("url", "image", "record")),
    ("--variant", "variant", ("url", "image", "artifact")),
)


def bench_plan(args: argparse.Namespace) -> BenchPlan:
    """The frozen plan of a bench run; an option that would have no effect is an error."""
    from tf2aif.bench.load import Load, LoadSettings
    from tf2aif.bench.profile import ProfileSettings
    from tf2aif.bench.runner import InputSpec

    kinds = [k for k in ("url", "image", "record", "artifact") if getattr(args, k)]
    if len(kinds) != 1:
        raise UsageError("name what to measure: one of --url, --image, --record or --artifact")
    kind = kinds[0]
    parser_defaults = _defaults()
    for option, dest, allowed in _TARGET_ONLY:
        if getattr(args, dest) != parser_defaults[dest] and kind not in allowed:
            raise UsageError(f"{option} does not apply to --{kind} targets")
    many = len(args.url) + len(args.image) + len(args.artifact) > 1
    if args.variant and many:
        raise UsageError("--variant labels one target; bench several targets one at a time")
    if args.arrival != parser_defaults["arrival"] and not args.rate:
        raise UsageError("--arrival applies to open-loop loads: give --rate too")
    if args.profile and (args.concurrency or args.sweep or args.rate or args.csv):
        raise UsageError(
            "--profile chooses its own loads: drop --concurrency, --sweep, --rate and --csv"
        )
    if not args.profile and args.profile_requests != parser_defaults["profile_requests"]:
        raise UsageError("--profile-requests applies to --profile runs")
    if args.json_tensors and (args.health or args.files):
        raise UsageError("--json-tensors applies to tensor bodies, not to --health or --files")
    settings = LoadSettings(
        warmup_s=args.warmup,
        window_s=args.window,
        tolerance=args.tolerance,
        max_duration_s=args.max_duration,
        max_requests=args.max_requests,
        timeout_s=args.timeout,
    )
    loads = [Load(concurrency=c) for c in _concurrencies(args)]
    loads += [Load(rate=r, arrival=args.arrival) for r in args.rate or ()]
    inputs = InputSpec(
        kind="health"
        if args.health
        else "samples"
        if args.samples
        else "files"
        if args.files
        else "random",
        binary=not args.json_tensors,
        samples=args.samples,
        files=tuple(_expand(args.files or ())),
        count=args.distinct,
    )
    return BenchPlan(
        targets=tuple(_targets(args)),
        settings=settings,
        loads=tuple(loads or [Load(concurrency=1)]),
        inputs=inputs,
        http_client=args.http_client,
        profile=ProfileSettings(service_requests=args.profile_requests) if args.profile else None,
        json=args.json,
        csv=args.csv,
        quiet=args.quiet,
    )


def _defaults() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    _add_bench(parser.add_subparsers())
    return vars(parser.parse_args(["bench"]))


def run_bench(args: argparse.Namespace) -> int:
    plan = bench_plan(args)
    if plan.profile is not None:
        return _run_profile(args, plan)
    return _run_loads(plan)


def _concurrencies(args) -> list[int]:
    values = list(args.concurrency or ())
    if args.sweep:
        level = 1
        while level < args.sweep:
            values.append(level)
            level *= 2
        values.append(args.sweep)
    return sorted(set(values), key=values.index)


def _expand(patterns) -> Iterator[Path]:
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise BenchError(f"--files {pattern!r} matches no file")
        yield from (Path(m) for m in matches)


def _targets(args) -> Iterator[Target]:
    from tf2aif.bench import targets
    from tf2aif.bench.record import pick_variant
    from tf2aif.pipeline.record import image_reference, read_record

    for url in args.url:
        yield Target(kind="url", target=url, variant=args.variant, model=args.model)
    for artifact in args.artifact:
        yield Target(
            kind="artifact", target=str(artifact), variant=args.variant, model=None,
            serve_args=tuple(args.serve_arg), ready_timeout_s=args.ready_timeout,
        )  # fmt: skip
    images = [(image, args.variant, args.model) for image in args.image]
    if args.record:
        record = read_record(args.record)
        here = targets.host_platform()
        for entry in record.images:
            variant = pick_variant(entry.variants, here)
            if entry.status == "success" and image_reference(entry) and variant:
                images.append((image_reference(entry), variant, args.model or record.name))
    for image, variant, model in images:
        yield Target(
            kind="image", target=image, variant=variant, model=model,
            container_port=args.container_port, ready_timeout_s=args.ready_timeout,
        )  # fmt: skip


def _endpoint(target: Target) -> contextlib.AbstractContextManager:
    """Start (on entering) what `target` needs and yield its Endpoint."""
    from tf2aif.bench import targets

    if target.kind == "url":
        return targets.url_endpoint(target.target, model=target.model, variant=target.variant)
    if target.kind == "artifact":
        return targets.artifact_endpoint(
            Path(target.target), variant=target.variant, ready_timeout_s=target.ready_timeout_s,
            serve_args=target.serve_args,
        )  # fmt: skip
    return targets.image_endpoint(
        target.target, variant=target.variant, model=target.model,
        container_port=target.container_port, ready_timeout_s=target.ready_timeout_s,
    )  # fmt: skip


def _run_loads(plan: BenchPlan) -> int:
    from tf2aif.bench.result import BenchResult
    from tf2aif.bench.runner import Bench, bench_endpoint
    from tf2aif.cli.live import LiveView

    runs = []
    with LiveView(quiet=plan.quiet) as view:
        for target in plan.targets:
            with _endpoint(target) as endpoint:
                view.status(f"{endpoint.variant}: {len(plan.loads)} load(s) on {endpoint.base_url}")
                bench = Bench(
                    endpoint=endpoint, inputs=plan.inputs, loads=plan.loads,
                    settings=plan.settings, http_client=plan.http_client, on_run=view.add,
                )  # fmt: skip
                runs += asyncio.run(bench_endpoint(bench))
    _write(BenchResult(settings=plan.settings, runs=runs).to_dict(), plan)
    return 0


def _write(data: dict, plan: BenchPlan) -> None:
    from tf2aif.bench.result import dumps, to_csv

    if plan.json:
        plan.json.parent.mkdir(parents=True, exist_ok=True)
        plan.json.write_text(dumps(data))
    if plan.csv and "runs" in data:
        plan.csv.parent.mkdir(parents=True, exist_ok=True)
        plan.csv.write_text(to_csv(json.loads(dumps(data))))


def _run_profile(args, plan: BenchPlan) -> int:
    from tf2aif.bench.profile import profile_document, profile_endpoint
    from tf2aif.bench.result import dumps
    from tf2aif.bench.runner import Bench

    console = messages(quiet=plan.quiet)
    profiles = []
    for target in plan.targets:
        with _endpoint(target) as endpoint:
            bench = Bench(
                endpoint=endpoint, inputs=plan.inputs, loads=(), settings=plan.settings,
                http_client=plan.http_client,
            )  # fmt: skip
            profile = asyncio.run(profile_endpoint(bench, plan.profile, note=console.log))
            profiles.append(profile)
            console.print_json(dumps(_headline(profile)))
    document = profile_document(profiles, plan.settings)
    path = plan.json or project_profile_path(args.record, args.artifact)
    if path is None:
        print(dumps(document), end="")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(document))
    console.log(f"wrote {path}")
    return 0


def project_profile_path(record: Path | None, artifacts: list[Path]) -> Path | None:
    """Where a profile of a built project goes when --json does not say: next to its record.

    That is `tf2aif-profile.json` beside the `--record` file, or beside the build record of the
    project whose artifacts (`<project>/.tf2aif/artifacts/<convert target>`) are benched.
    """
    from tf2aif.bench.profile import PROFILE_FILE
    from tf2aif.pipeline.record import RECORD_FILE

    if record is not None:
        return record.parent / PROFILE_FILE
    roots = set()
    for artifact in artifacts:
        folder = artifact.resolve()
        if folder.parent.name != "artifacts" or folder.parent.parent.name != ".tf2aif":
            return None
        roots.add(folder.parents[2])
    if len(roots) != 1 or not (root := roots.pop()).joinpath(RECORD_FILE).is_file():
        return None
    return root / PROFILE_FILE


def _headline(profile: dict) -> dict:
    keys = ("variant", "service_time", "sustainable_rate_rps", "memory")
    return {k: profile[k] for k in keys} | {"peak_rps": profile["capacity"]["peak_rps"]}


DEFAULT_BASELINE = "tf"


def report_baseline(given: str | None, present: Sequence[str], paths: Sequence[Path]) -> str:
    """--baseline, refused when no result has a run of it (its speedups would silently vanish);
    without it, DEFAULT_BASELINE."""

    if given is None:
        return DEFAULT_BASELINE
    if given not in present:
        files = ", ".join(str(p) for p in paths)
        have = ", ".join(present) or "none (no run names its runtime: bench with --variant)"
        raise UsageError(
            f"--baseline {given!r}: no run of that runtime in {files}"
            f"{did_you_mean(given, present)}; runtimes present: {have}"
        )
    return given


def run_report(args: argparse.Namespace) -> int:
    from tf2aif.bench.result import load_result
    from tf2aif.report import render_report
    from tf2aif.report.tables import runtimes_of

    results = [load_result(path) for path in args.results]
    baseline = report_baseline(args.baseline, runtimes_of(results), args.results)
    written = render_report(
        results, out=args.out, record=args.record, baseline=baseline, title=args.title,
        img_prefix=args.img_prefix,
    )  # fmt: skip
    for path in written:
        print(path)
    return 0
