"""Core subcommands: validate, plan, bake, init. Rich output lives here, data comes from stages.

One module: validate, plan, bake and init share the manifest arguments, the plan loader and the
rendering of a plan; split apart, each would import the others.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tf2aif.cli.common import ProxyCA, add_manifest_args, find_proxy_ca, write_proxy_ca
from tf2aif.cli.console import console as _console
from tf2aif.errors import PlanError

__all__ = ["add_parsers"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check a manifest: schema, files, matrix",
        description="Check a manifest and print its warnings; exit 1 with every error located.",
    )
    add_manifest_args(p)
    p.set_defaults(func=cmd_validate)

    p = subparsers.add_parser(
        "plan", help="show the variants, images and conversions a manifest resolves to"
    )
    add_manifest_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = subparsers.add_parser(
        "bake",
        help="build the images with docker buildx bake",
        description="Emit .tf2aif/docker-bake.json next to the manifest and build it. Arguments after `--` go to buildx.",
    )
    add_manifest_args(p)
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the bake file and stop (no docker needed)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="build only variants/targets matching (e.g. 'cpu/*', '*-int8'); repeatable",
    )
    p.add_argument(
        "--push",
        action="store_true",
        help="push to the manifest's registry; tags move only when every target succeeded",
    )
    p.add_argument(
        "--sbom",
        action="store_true",
        help="attach an SPDX SBOM attestation to every server image (BuildKit runs a generator "
        "image: docker/buildkit-syft-scanner, or the vendor map's replacement for it)",
    )
    p.add_argument(
        "--sbom-generator",
        metavar="REF",
        help="SBOM generator image to run (implies --sbom; default $TF2AIF_SBOM_GENERATOR)",
    )
    p.add_argument(
        "--changed",
        action="store_true",
        help="build only images whose content tag is not in the registry yet",
    )
    p.add_argument(
        "--no-load", action="store_true", help="do not load the images into the local image store"
    )
    p.add_argument(
        "--set",
        dest="set_values",
        type=bake_set,
        action="append",
        default=[],
        metavar="TARGET.KEY=VALUE",
        help="override a bake value (as buildx bake --set)",
    )
    p.add_argument(
        "--cache", choices=["registry"], help="emit registry cache-from/cache-to for every target"
    )
    p.add_argument(
        "--builder", help="buildx builder to use (remote BuildKit, kubernetes, docker-container)"
    )
    p.add_argument(
        "--source-date-epoch",
        metavar="SECONDS|off",
        help="timestamp for image configs and layer files (default: $SOURCE_DATE_EPOCH, else the "
        "manifest's last git commit): the same commit rebuilds to the same image bytes",
    )
    p.add_argument(
        "--ca-cert",
        help="CA bundle for HTTPS proxies during base image builds (never stored in an image)",
    )
    p.add_argument(
        "--record",
        help="where to write the build record (default: tf2aif-record.json next to the manifest)",
    )
    p.set_defaults(func=cmd_bake, accepts_extra=True)

    p = subparsers.add_parser("init", help="write a commented starter tf2aif.yaml")
    p.add_argument("path", nargs="?", default="tf2aif.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)


_BAKE_SET = re.compile(r"[^\s=.]+(\.[^\s=.]+)+=.*", re.DOTALL)


def bake_set(text: str) -> str:
    """A buildx bake override: TARGET.KEY[.SUBKEY]=VALUE (TARGET may be a pattern such as '*')."""
    if not _BAKE_SET.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected TARGET.KEY=VALUE such as '*.no-cache=true', got {text!r}"
        )
    return text


# -- pipeline --------------------------------------------------------------------------------


def load_plan(args: argparse.Namespace, env: Mapping[str, str] | None = None):
    """validate -> resolve -> plan, printing the manifest's warnings."""
    from tf2aif.pipeline.manifest import load_manifest
    from tf2aif.pipeline.plan import make_plan
    from tf2aif.pipeline.recipes import load_recipes
    from tf2aif.pipeline.resolve import resolve

    env = dict(os.environ) if env is None else env
    recipes = load_recipes(env=env)
    manifest, warnings = load_manifest(args.manifest, recipes=recipes)
    for warning in warnings:
        _console(stderr=True).print(f"[yellow]warning:[/] {warning}")
    resolution = resolve(
        manifest,
        recipes,
        vendor_map=read_vendor_map(args.vendor_map or env.get("TF2AIF_VENDOR_MAP")),
        model_facts=_model_facts(manifest, remember=not getattr(args, "print_only", False)),
    )
    return make_plan(resolution, env=env)


def _model_facts(manifest, *, remember: bool):
    """The model's facts (cached by digest), or None with a one-line warning: nothing skipped."""
    from tf2aif.pipeline.model_inspect import facts_or_why_not

    facts, why_not = facts_or_why_not(
        manifest.root / manifest.model.path,
        digest=manifest.model.digest,
        cache_root=manifest.root,
        remember=remember,
    )
    if facts is None:
        _console(stderr=True).print(
            f"[yellow]warning:[/] model not inspected, no cell ruled out by it: {why_not}",
            markup=True,
            highlight=False,
        )
    return facts


def read_vendor_map(path: str | None) -> dict[str, str]:
    """image reference -> replacement reference, from a YAML/JSON file (schema/vendor-map.schema.json)."""
    if not path:
        return {}
    from tf2aif.pipeline.yamlfile import load_checked

    data = load_checked(path, "vendor-map.schema.json", what="vendor map").data
    return dict(data.get("vendor_images", data))


# -- validate --------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    plan = load_plan(args)
    console = _console()
    console.print(
        f"[green]ok[/] {args.manifest}: {len(plan.variants)} variants, {len(plan.serves)} images, "
        f"{len(plan.converts)} conversions, {len(plan.skipped)} cells skipped"
    )
    for cell in plan.skipped:
        if cell.by_model:
            console.print(f"[yellow]warning[/] {cell.id}: {cell.reason}; fix: {cell.fix}")
    return 0


# -- plan ------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    plan = load_plan(args)
    if args.json:
        print(json.dumps(plan_json(plan), indent=2, sort_keys=True))
        return 0
    from rich.table import Table

    console = _console()
    image = plan.serves[0].image if plan.serves else plan.name
    title = (
        f"{plan.name}: {len(plan.variants)} variants -> {len(plan.serves)} images ({image}:<tag>)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("variant", "tag", "platforms", "conversion", "base image"):
        table.add_column(column, overflow="fold")
    for serve in plan.serves:
        base = next(b for b in plan.bases if b.name == serve.base)
        tag = serve.tags[1].rsplit(":", 1)[1]
        rows = (
            "\n".join(serve.variants),
            tag,
            "\n".join(serve.platforms),
            serve.convert,
            base.vendor,
        )
        table.add_row(*rows)
    console.print(table)
    for line in option_lines(plan):
        console.print(line, markup=False, highlight=False)
    if plan.skipped:
        skipped = Table(title="skipped cells", title_justify="left")
        for column in ("cell", "reason", "fix"):
            skipped.add_column(column, overflow="fold")
        for cell in plan.skipped:
            skipped.add_row(cell.id, cell.reason, cell.fix)
        console.print(skipped)
    from tf2aif.pipeline.model_inspect import fallback_line, gated_output_line

    console.print(gated_output_line(plan))
    console.print(fallback_line(plan))
    for note in plan.notes:
        console.print(note, markup=False, highlight=False)
    return 0


def option_lines(plan) -> list[str]:
    """Per image, the options its conversion runs with and the base images an option chose (why)."""
    lines = []
    for serve in plan.serves:
        variant = next(v for v in plan.variants if v.id == serve.variants[0])
        chosen = {
            k: v for k, v in variant.options.items() if v is not False and v is not None and v != ""
        }
        if chosen:
            shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in chosen.items())
            lines.append(f"{serve.name}: options {shown}")
        base = next(b for b in plan.bases if b.name == serve.base)
        prefix = "io.tf2aif.option."
        for label, reason in serve.labels.items():
            if label.startswith(prefix):
                lines.append(
                    f"{serve.name}: options.{serve.runtime}.{label[len(prefix) :]} serves on "
                    f"base {base.folder}: {reason}"
                )
    return lines


def plan_json(plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "model_digest": plan.model_digest,
        "images": [
            {
                "target": s.name,
                "variants": list(s.variants),
                "platforms": list(s.platforms),
                "tags": list(s.tags),
                "convert": s.convert,
                "base": s.base,
            }
            for s in plan.serves
        ],
        "conversions": [
            {"target": c.name, "variants": list(c.variants), "spec": json.loads(c.spec.to_json())}
            for c in plan.converts
        ],
        "bases": [
            {
                "target": b.name,
                "folder": b.folder,
                "vendor": b.vendor,
                "platforms": list(b.platforms),
            }
            for b in plan.bases
        ],
        "skipped": [
            {"cell": c.id, "reason": c.reason, "fix": c.fix, "by_model": c.by_model}
            for c in plan.skipped
        ],
        "notes": list(plan.notes),
    }


# -- bake ------------------------------------------------------------------------------------


def cmd_bake(args: argparse.Namespace) -> int:
    from tf2aif.pipeline.bake import EmitOptions, bake_json, write_build_dir

    plan = load_plan(args)
    text = bake_json(plan, EmitOptions(cache=args.cache))
    if args.print_only:
        print(text, end="")
        return 0
    from tf2aif.pipeline.build import check_tools

    buildx = check_tools()
    options, source_date, proxy_ca = build_options(args, plan)
    write_proxy_ca(proxy_ca)
    write_build_dir(plan, text)
    console = _console()
    console.print(f"[bold]tf2aif bake[/] {plan.name}: {len(plan.serves)} images, {buildx}")
    clamped = (
        "image config and layer file times"
        if options.rewrite_timestamps
        else "image config times only"
    )
    console.print(
        f"SOURCE_DATE_EPOCH={source_date.epoch or 'unset'} ({source_date.origin})"
        + (f": {clamped}" if source_date.epoch else "")
    )
    results = _run_and_record(plan, options, args, buildx)
    failed = [r for r in results if not r]
    return 3 if failed else 0


def build_options(args: argparse.Namespace, plan) -> tuple[Any, Any, ProxyCA | None]:
    """(BuildOptions, SourceDate, ProxyCA) from the bake flags, the environment and the
    builder; writes nothing (the caller assembles the proxy CA just before building)."""
    from tf2aif.pipeline.build import BuildOptions, builder_driver, sbom_generator
    from tf2aif.pipeline.sourcedate import resolve_source_date

    source_date = resolve_source_date(Path(plan.root), args.source_date_epoch)
    proxy_ca = find_proxy_ca(args.ca_cert)
    # the docker driver's exporter cannot rewrite layer file times ("conflicts with unpack")
    rewrite = bool(source_date.epoch) and builder_driver(args.builder) not in (None, "docker")
    generator = sbom_generator(
        explicit=args.sbom_generator,
        env=os.environ,
        vendor_map=read_vendor_map(args.vendor_map or os.environ.get("TF2AIF_VENDOR_MAP")),
    )
    options = BuildOptions(
        only=tuple(args.only),
        changed=args.changed,
        sbom=args.sbom or bool(args.sbom_generator),
        sbom_generator=generator,
        push=args.push,
        load=not args.no_load,
        set_values=tuple(args.set_values),
        extra_args=tuple(a for a in args.extra if a != "--"),
        ca_file=str(proxy_ca.path) if proxy_ca else None,
        builder=args.builder,
        source_date_epoch=source_date.epoch,
        rewrite_timestamps=rewrite,
    )
    return options, source_date, proxy_ca


def _run_and_record(plan, options, args, buildx: str):
    from tf2aif.errors import BuildError
    from tf2aif.pipeline.build import run_build

    console = _console()
    try:
        results = run_build(
            plan, options, sink=lambda line: console.print(line, markup=False, highlight=False)
        )
    except BuildError as exc:
        results = exc.results
        _write_record(plan, results, args, buildx, options, status="failed")
        raise
    record = _write_record(plan, results, args, buildx, options, status="ok")
    console.print(
        f"[green]built[/] {sum(1 for r in results if r.target.startswith('serve-'))} images; record: {record}"
    )
    return results


def _write_record(plan, results, args, buildx: str, options, *, status: str) -> Path:
    from tf2aif.pipeline.bake import ARTIFACTS_DIR
    from tf2aif.pipeline.record import make_record, save_record

    root = Path(plan.root)
    fidelity = {}
    for convert in plan.converts:
        report = root / ARTIFACTS_DIR / convert.name / "fidelity.json"
        if report.is_file():
            fidelity[convert.name] = json.loads(report.read_text())
    record = make_record(
        plan,
        results,
        fidelity=fidelity,
        tools={"buildx": buildx},
        source_date_epoch=options.source_date_epoch,
    )
    path = record_path(args, plan)
    if status != "ok":
        path = path.with_name(path.stem + ".failed.json")  # never overwrite the last good record
    return save_record(record, path)


def record_path(args: argparse.Namespace, plan) -> Path:
    """Where `tf2aif bake` writes its build record: --record, else next to the manifest."""
    from tf2aif.pipeline.record import RECORD_FILE

    return Path(args.record) if args.record else Path(plan.root) / RECORD_FILE


# -- init ------------------------------------------------------------------------------------

STARTER = """\
# yaml-language-server: $schema=https://tf2aif.dev/schema/tf2aif.schema.json
# tf2aif manifest: one trained TensorFlow model -> a matrix of inference images.
# Check it with `tf2aif validate`, see what it builds with `tf2aif plan`, build with `tf2aif bake`.
version: 1
name: my-model                     # image name and served model name: lowercase, digits, '-'
model:
  path: models/my-model            # SavedModel folder or .keras file, relative to this file
  signature: serving_default
# processing:                      # optional: preprocess(payload, content_type) / postprocess(outputs)
#   module: app/processing.py
# calibration:                     # required when any variant is int8: yields model inputs
#   module: app/calibration.py
#   function: samples
#   count: 200
targets:                           # the matrix: platforms x runtimes x precisions
  platforms: [cpu, arm]            # cpu, arm, gpu, agx, alveo
  runtimes: [tf, tflite, openvino] # tf, tflite, openvino, onnxruntime, tensorrt, vitis-ai
  precisions: [fp32]               # fp32, fp16, int8
  exclude: []                      # e.g. [{platform: arm, runtime: openvino}]
  include: []                      # e.g. [{platform: gpu, runtime: tensorrt, precision: int8}]
fidelity:                          # every converted model is checked against TensorFlow
  atol: 0.001
  min_top1_agreement: 0.99
# registry: registry.example.com/team
"""


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        raise PlanError(f"{path} exists; use --force to overwrite it")
    path.write_text(STARTER)
    _console().print(f"wrote {path}; next: edit it, then `tf2aif validate {path}`")
    return 0
