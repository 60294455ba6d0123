"""`tf2aif ci matrix`, `tf2aif ci shard`, `tf2aif release`: one release built by many runners.

The CI system schedules (a matrix job per shard), BuildKit builds, the registry carries the
artifacts, the cache and the per-platform images; these commands only cut the plan into shards,
run one shard, and merge the shards' records into the release.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.cli.common import ProxyCA, add_manifest_args, find_proxy_ca, write_proxy_ca
from tf2aif.cli.console import console
from tf2aif.errors import EXIT_BUILD, PlanError, UsageError, did_you_mean

__all__ = ["add_parsers"]

RUNNER_KINDS = ("amd64", "arm64", "gpu", "jetson", "alveo")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    ci = subparsers.add_parser(
        "ci",
        help="split a release across CI runners: the shard matrix, and one shard's build",
        description="Split the plan into shards for a CI matrix (`ci matrix`), build one shard on "
        "this runner (`ci shard`); merge them with `tf2aif release`.",
    )
    sub = ci.add_subparsers(dest="ci_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser(
        "matrix",
        help="print the CI matrix (JSON): convert shards and per-platform build shards",
        description="Print the shards of the plan as a CI matrix: `convert.include` (every "
        "conversion exactly once) and `build.include` (every server image and platform exactly "
        "once, with the runner label it needs).",
    )
    add_manifest_args(p)
    _shard_args(p)
    p.add_argument(
        "--runner",
        action="append",
        default=[],
        type=runner_label,
        metavar="KIND=LABEL",
        help="the label your runners carry for a kind of runner (amd64, arm64, gpu, jetson, "
        "alveo), e.g. arm64=ubuntu-24.04-arm; labels only, shard names stay; repeatable",
    )
    p.add_argument(
        "--format",
        choices=["github", "gitlab"],
        default="github",
        help="github: matrix JSON (default); gitlab: a child pipeline with a job per shard",
    )
    p.add_argument(
        "--gitlab-template",
        default=DEFAULT_GITLAB_TEMPLATE,
        help="the file defining the hidden jobs .tf2aif-shard and .tf2aif-release "
        "(--format gitlab; default .gitlab/tf2aif-shards.yml)",
    )
    p.add_argument(
        "--github-output",
        action="store_true",
        help="also append matrix=<json> to $GITHUB_OUTPUT (for `fromJSON(needs.<job>.outputs.matrix)`)",
    )
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser(
        "shard",
        help="build one shard of the matrix and write its shard record",
        description="Build one shard: a convert shard pushes each conversion artifact under its "
        "content address (skipping those already there); a build shard builds its server images "
        "for one platform and pushes them by digest (staging tags on the docker driver). Arguments "
        "after `--` go to buildx.",
    )
    p.add_argument("shard", help="shard name, as `tf2aif ci matrix` lists it")
    add_manifest_args(p)
    _shard_args(p)
    p.add_argument(
        "--cache",
        choices=["registry"],
        help="registry cache-from/cache-to, per target and platform",
    )
    p.add_argument("--builder", help="buildx builder to use")
    p.add_argument(
        "--source-date-epoch",
        metavar="SECONDS|off",
        help="timestamp for image configs (default: $SOURCE_DATE_EPOCH, else the last git commit)",
    )
    p.add_argument("--ca-cert", help="CA bundle for HTTPS proxies during base image builds")
    p.add_argument(
        "--record",
        help="where to write the shard record (default: .tf2aif/shards/<shard>.json)",
    )
    p.set_defaults(func=cmd_shard, accepts_extra=True)

    p = subparsers.add_parser(
        "release",
        help="merge shard records into multi-arch images and move the final tags (all or nothing)",
        description="Check that every shard of the plan succeeded with the plan's content "
        "addresses, merge per-platform images into indexes, then move every final tag and write "
        "the build record. A missing or failed shard moves nothing.",
    )
    p.add_argument(
        "records", nargs="+", metavar="SHARD-RECORD", help="shard record files or folders of them"
    )
    p.add_argument("--manifest", default="tf2aif.yaml", help="manifest file or its folder")
    p.add_argument("--vendor-map", help="the vendor map the shards were built with")
    _shard_args(p)
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="check the records and print the merges and tags, change nothing",
    )
    p.add_argument(
        "--record", help="build record path (default: tf2aif-record.json next to the manifest)"
    )
    p.set_defaults(func=cmd_release)


def _shard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split",
        choices=["platform", "target"],
        default="platform",
        help="build shards per (runner, platform) [default] or per (image, platform)",
    )


def runner_label(text: str) -> tuple[str, str]:
    """--runner KIND=LABEL: (kind, label), a known kind and a label without spaces."""
    name, sep, label = (part.strip() for part in text.partition("="))
    if not sep or not name or not label:
        raise argparse.ArgumentTypeError(
            f"expected KIND=LABEL, e.g. arm64=ubuntu-24.04-arm, got {text!r}"
        )
    if name not in RUNNER_KINDS:
        raise argparse.ArgumentTypeError(
            f"unknown runner kind {name!r}{did_you_mean(name, RUNNER_KINDS)}; "
            f"kinds: {', '.join(RUNNER_KINDS)}"
        )
    if any(c.isspace() or not c.isprintable() for c in label):
        raise argparse.ArgumentTypeError(f"a runner label has no spaces, got {label!r}")
    return name, label


def _shards(args: argparse.Namespace, plan):
    from tf2aif.shards.matrix import Split, plan_shards

    runners = dict(getattr(args, "runner", []))
    return plan_shards(plan, split=Split(args.split), runners=runners)


DEFAULT_GITLAB_TEMPLATE = ".gitlab/tf2aif-shards.yml"


def _check_format_options(args: argparse.Namespace) -> None:
    """An option of the other --format is refused, not ignored."""
    if args.format != "gitlab" and args.gitlab_template != DEFAULT_GITLAB_TEMPLATE:
        raise UsageError("--gitlab-template applies to --format gitlab only")
    if args.format != "github" and args.github_output:
        raise UsageError("--github-output applies to --format github only")


def cmd_matrix(args: argparse.Namespace) -> int:
    from tf2aif.cli.pipeline import load_plan
    from tf2aif.shards.matrix import gitlab_pipeline, matrix

    _check_format_options(args)
    plan = load_plan(args)
    shards = _shards(args, plan)
    if args.format == "gitlab":
        split = ["--split", args.split] if args.split != "platform" else []
        pipeline = gitlab_pipeline(shards, template=args.gitlab_template, extra_args=split)
        print(json.dumps(pipeline, indent=2))
        return 0
    data = matrix(plan, shards)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if args.github_output:
        target = os.environ.get("GITHUB_OUTPUT")
        if not target:
            raise PlanError("--github-output: $GITHUB_OUTPUT is not set (not on GitHub Actions?)")
        with open(target, "a", encoding="utf-8") as out:
            out.write(f"matrix={text}\n")
    print(text)
    return 0


@dataclass(frozen=True, kw_only=True)
class ShardJob:
    """Everything `ci shard` runs, decided before anything runs."""

    shard: Any  # ConvertShard | BuildShard
    shards: Any  # Shards
    options: Any  # BuildOptions
    cache: bool
    record: Path
    proxy_ca: ProxyCA | None


def shard_job(args: argparse.Namespace, plan) -> ShardJob:
    """The shard, its build options and its record path from the flags; writes nothing."""
    from tf2aif.pipeline.build import BuildOptions
    from tf2aif.pipeline.sourcedate import resolve_source_date
    from tf2aif.shards.matrix import find_shard

    shards = _shards(args, plan)
    shard = find_shard(shards, args.shard)
    source_date = resolve_source_date(Path(plan.root), args.source_date_epoch)
    proxy_ca = find_proxy_ca(args.ca_cert)
    options = BuildOptions(
        builder=args.builder,
        ca_file=str(proxy_ca.path) if proxy_ca else None,
        source_date_epoch=source_date.epoch,
        extra_args=tuple(a for a in getattr(args, "extra", ()) if a != "--"),
    )
    record = (
        Path(args.record)
        if args.record
        else Path(plan.root) / ".tf2aif" / "shards" / f"{shard.name}.json"
    )
    return ShardJob(
        shard=shard,
        shards=shards,
        options=options,
        cache=args.cache == "registry",
        record=record,
        proxy_ca=proxy_ca,
    )


def cmd_shard(args: argparse.Namespace) -> int:
    from tf2aif.cli.pipeline import load_plan
    from tf2aif.pipeline.build import check_tools
    from tf2aif.shards.matrix import ConvertShard
    from tf2aif.shards.record import save_shard_record
    from tf2aif.shards.run import run_build_shard, run_convert_shard

    plan = load_plan(args)
    job = shard_job(args, plan)
    shard, shards, options, cache = job.shard, job.shards, job.options, job.cache
    check_tools()
    write_proxy_ca(job.proxy_ca)

    def sink(line: str) -> None:
        print(line, flush=True)

    if isinstance(shard, ConvertShard):
        record = run_convert_shard(plan, shards, shard, options, cache=cache, sink=sink)
    else:
        record = run_build_shard(plan, shards, shard, options, cache=cache, sink=sink)
    path = job.record
    save_shard_record(record, path)
    print(f"shard {shard.name}: {record.status}; record: {path}")
    if record.status != "success":
        for item in (*record.conversions, *record.images):
            if item.status != "success":
                console(stderr=True).print(
                    f"  {item.status:8} {item.target}: {item.reason}", markup=False
                )
        return EXIT_BUILD
    return 0


def _record_files(values: list[str]) -> list[Path]:
    files: list[Path] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            if not found:
                raise PlanError(f"{value}: no shard records (*.json) in this folder")
            files += found
        else:
            files.append(path)
    return files


def cmd_release(args: argparse.Namespace) -> int:
    from tf2aif.cli.pipeline import load_plan
    from tf2aif.pipeline.build import Result, Status, check_tools
    from tf2aif.pipeline.record import RECORD_FILE, make_record, save_record
    from tf2aif.shards.record import load_shard_record
    from tf2aif.shards.release import ReleaseError, assemble, check_release, describe

    plan = load_plan(args)
    shards = _shards(args, plan)
    records = [load_shard_record(path) for path in _record_files(args.records)]
    root = Path(plan.root)
    record_path = Path(args.record) if args.record else root / RECORD_FILE
    tools = {}
    for record in records:
        tools.update({f"{record.shard}.{k}": v for k, v in record.tools.items()})
    epochs = sorted({r.source_date_epoch for r in records if r.source_date_epoch})
    try:
        release = check_release(plan, shards, records)
    except ReleaseError as exc:
        failed = set(exc.failed)
        results = [
            Result(
                target=s.name,
                status=Status.FAILED if s.name in failed else Status.ABORTED,
                reason="; ".join(p for p in exc.problems if f" {s.name} " in f" {p} ")
                or "not released: " + "; ".join(exc.problems),
            )
            for s in plan.serves
        ]
        record = make_record(plan, results, fidelity={}, tools=tools)
        failed_path = record_path.with_name(record_path.stem + ".failed.json")
        save_record(record, failed_path)
        console(stderr=True).print(f"release record: {failed_path}", markup=False)
        raise
    if args.print_only:
        print(describe(release))
        return 0
    check_tools()
    digests = assemble(release, sink=lambda line: print(line, flush=True))
    results = [
        Result(
            target=s.name,
            status=Status.SUCCESS,
            digest=digests[s.name],
            image=s.tags[0],
            duration=release.durations.get(s.name, 0.0),
        )
        for s in plan.serves
    ]
    results += [
        Result(target=name, status=Status.SUCCESS, duration=seconds)
        for name, seconds in release.durations.items()
        if name.startswith("convert-")
    ]
    record = make_record(
        plan,
        results,
        fidelity=release.fidelity,
        tools=tools,
        source_date_epoch=epochs[0] if len(epochs) == 1 else None,
    )
    save_record(record, record_path)
    print(f"released {len(plan.serves)} images from {len(records)} shards; record: {record_path}")
    return 0
