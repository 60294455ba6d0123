"""`tf2aif convert`: run one variant's conversion locally, the same code as the build stage.

tf2aif convert [MANIFEST] --variant cpu/tflite/int8 --out DIR
tf2aif convert --spec-json SPEC.json --root DIR --out DIR
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tf2aif.cli.common import add_manifest_args
from tf2aif.cli.console import messages as errors
from tf2aif.cli.console import results
from tf2aif.errors import EXIT_USAGE, PlanError

__all__ = ["add_parsers"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert the model for one variant locally and check its fidelity",
        description=(
            "Convert the manifest's model for one variant (platform/runtime/precision) into an "
            "artifact folder, exactly as the conversion build stage does, and print its fidelity. "
            "Or run a ConvertSpec JSON directly with --spec-json and --root."
        ),
    )
    add_manifest_args(p)
    p.add_argument("--variant", metavar="PLATFORM/RUNTIME/PRECISION", help="e.g. cpu/tflite/int8")
    p.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    p.add_argument("--spec-json", type=Path, metavar="FILE", help="a ConvertSpec JSON file")
    p.add_argument("--root", type=Path, help="folder the --spec-json paths are relative to")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console, messages = results(), errors()
    if args.root is not None and args.spec_json is None:
        messages.print("[red]error:[/] --root applies to --spec-json (a manifest is its own root)")
        return EXIT_USAGE
    if args.spec_json is not None:
        if args.variant:
            messages.print("[red]error:[/] give either --variant or --spec-json, not both")
            return EXIT_USAGE
        spec, root = _spec_from_file(args.spec_json), args.root or Path(".")
    else:
        if not args.variant:
            messages.print("[red]error:[/] --variant PLATFORM/RUNTIME/PRECISION is required")
            _print_variants(messages, args)
            return EXIT_USAGE
        spec, root = _spec_from_manifest(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf2aif.image.convert.pipeline import run_conversion, variant_of

    console.print(f"converting [bold]{variant_of(spec)}[/] with backend {spec.backend!r} ...")
    info = run_conversion(spec, root=root, out=args.out)
    seconds = info.options.get("conversion_seconds", 0)
    console.print(f"[green]ok[/] {args.out / info.model_file} ({seconds:.1f} s)")
    _print_fidelity(console, info.fidelity)
    return 0


def _spec_from_file(path: Path):
    from tf2aif.image.convert.spec import ConvertSpec

    try:
        return ConvertSpec.from_json(path.read_text())
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PlanError(f"{path}: not a ConvertSpec JSON: {type(exc).__name__}: {exc}") from exc


def _spec_from_manifest(args: argparse.Namespace):
    from tf2aif.cli.pipeline import load_plan
    from tf2aif.pipeline.plan import local_convert_spec

    plan = load_plan(args)
    return local_convert_spec(plan, args.variant), Path(plan.root)


def _print_variants(console: Any, args: argparse.Namespace) -> None:
    try:
        from tf2aif.cli.pipeline import load_plan

        variants = [v.id for v in load_plan(args).variants]
    except Exception:  # the manifest itself is broken: `tf2aif validate` says why
        return
    console.print("variants: " + ", ".join(variants))


def _print_fidelity(console: Any, report: dict[str, Any]) -> None:
    if not report.get("checked"):
        console.print(f"fidelity not checked: {report.get('note', '')}")
        return
    console.print(fidelity_table(report))
    if report.get("note"):
        console.print(report["note"])
    console.print("fidelity: " + ("[green]passed[/]" if report["passed"] else "[red]FAILED[/]"))


def fidelity_table(report: dict[str, Any]) -> Any:
    """The checked metrics of a fidelity.json: names fold onto more lines in a narrow terminal,
    figures never wrap and nothing is cut to a stub."""
    from rich.table import Table

    from tf2aif.image.convert.fidelity import METRIC_ORDER, checks_of

    samples = report["samples"]
    title = f"fidelity of {report['variant']} on {samples['count']} samples ({samples['source']})"
    table = Table(title=title, title_justify="left")
    table.add_column("metric", overflow="fold", min_width=6)
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("threshold", no_wrap=True)
    table.add_column("result", no_wrap=True)
    checks = {check.metric: check for check in checks_of(report)}
    for name in METRIC_ORDER:
        if name not in report["metrics"]:
            continue
        check = checks.get(name)
        result = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "not measured"}
        table.add_row(
            name,
            f"{report['metrics'][name]:.4g}",
            f"{check.op} {check.threshold:g}" if check else "",
            result[check.passed] if check else "",
        )
    return table
