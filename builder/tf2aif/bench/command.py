"""`tf2aif bench` and `tf2aif report`: argument parsing and the rich live view only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
from collections.abc import Iterator
from pathlib import Path

from tf2aif.argtypes import count, fraction, number, numbers
from tf2aif.errors import Tf2aifError

__all__ = ["add_parsers", "project_profile_path"]


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
    p.add_argument("--baseline", default="tf", help="runtime every speedup is relative to")
    p.add_argument("--out", type=Path, default=Path("bench-report"), help="output folder")
    p.add_argument("--title", default="tf2aif benchmark")
    p.add_argument("--img-prefix", default="", help="prefix for image links in the Markdown")
    p.set_defaults(func=run_report)


def run_bench(args: argparse.Namespace) -> int:
    from tf2aif.bench.load import Load, LoadSettings
    from tf2aif.bench.runner import InputSpec

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
    if not loads:
        loads = [Load(concurrency=1)]
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
    if args.profile:
        return _run_profile(args, settings, inputs)
    return _run_loads(args, settings, inputs, loads)


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
            raise Tf2aifError(f"--files {pattern!r} matches no file")
        yield from (Path(m) for m in matches)


def _endpoints(args) -> Iterator[contextlib.AbstractContextManager]:
    """One context manager per thing to measure, started one after the other."""
    from tf2aif.bench import targets
    from tf2aif.bench.record import image_reference, pick_variant, read_record

    kinds = sum(bool(x) for x in (args.url, args.image, args.record, args.artifact))
    if kinds != 1:
        raise Tf2aifError("name what to measure: one of --url, --image, --record or --artifact")
    for url in args.url:
        yield targets.url_endpoint(url, model=args.model, variant=args.variant)
    for artifact in args.artifact:
        yield targets.artifact_endpoint(
            artifact, variant=args.variant, ready_timeout_s=args.ready_timeout,
            serve_args=tuple(args.serve_arg),
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
        yield targets.image_endpoint(
            image, variant=variant, model=model, container_port=args.container_port,
            ready_timeout_s=args.ready_timeout,
        )  # fmt: skip


def _run_loads(args, settings, inputs, loads) -> int:
    from tf2aif.bench.live import LiveView
    from tf2aif.bench.result import BenchResult
    from tf2aif.bench.runner import Bench, bench_endpoint

    runs = []
    with LiveView(quiet=args.quiet) as view:
        for context in _endpoints(args):
            with context as endpoint:
                view.status(f"{endpoint.variant}: {len(loads)} load(s) on {endpoint.base_url}")
                bench = Bench(
                    endpoint=endpoint, inputs=inputs, loads=loads, settings=settings,
                    http_client=args.http_client, on_run=view.add,
                )  # fmt: skip
                runs += asyncio.run(bench_endpoint(bench))
    _write(BenchResult(settings=settings, runs=runs).to_dict(), args)
    return 0


def _write(data: dict, args) -> None:
    from tf2aif.bench.result import dumps, to_csv

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(dumps(data))
    if getattr(args, "csv", None) and "runs" in data:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        args.csv.write_text(to_csv(json.loads(dumps(data))))


def _run_profile(args, settings, inputs) -> int:
    from rich.console import Console

    from tf2aif.bench.profile import ProfileSettings, profile_document, profile_endpoint
    from tf2aif.bench.result import dumps
    from tf2aif.bench.runner import Bench

    console = Console(stderr=True, quiet=args.quiet)
    profiles = []
    for context in _endpoints(args):
        with context as endpoint:
            bench = Bench(
                endpoint=endpoint, inputs=inputs, loads=(), settings=settings,
                http_client=args.http_client,
            )  # fmt: skip
            options = ProfileSettings(service_requests=args.profile_requests)
            profile = asyncio.run(profile_endpoint(bench, options, note=console.log))
            profiles.append(profile)
            console.print_json(dumps(_headline(profile)))
    document = profile_document(profiles, settings)
    path = args.json or project_profile_path(args.record, args.artifact)
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
    from tf2aif.record import RECORD_FILE

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


def run_report(args: argparse.Namespace) -> int:
    from tf2aif.bench.result import load_result
    from tf2aif.report import render_report

    results = [load_result(path) for path in args.results]
    written = render_report(
        results, out=args.out, record=args.record, baseline=args.baseline, title=args.title,
        img_prefix=args.img_prefix,
    )  # fmt: skip
    for path in written:
        print(path)
    return 0
