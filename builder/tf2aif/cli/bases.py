"""`tf2aif bases`: list the base image folders; `--local` builds vendor stand-ins."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from tf2aif.errors import UsageError

__all__ = ["add_parsers", "run"]

DEFAULT_MAP = Path(".tf2aif/vendor-map.yaml")
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bases",
        help="list base images; --local builds stand-ins for unreachable vendor images",
        description=(
            "Without options, list base_images/ folders and their default vendor images. "
            "With --local, build a multi-arch Debian+python3 stand-in (mmdebstrap, cached "
            "under $TF2AIF_STATE), push it to --registry, build and push the SBOM scanner "
            "(base_images/sbom-scanner) on it, and write a vendor map that points each vendor "
            "image, and BuildKit's default SBOM generator, at them (use it with "
            "`tf2aif bake --vendor-map` or TF2AIF_VENDOR_MAP)."
        ),
    )
    p.add_argument("--local", action="store_true", help="build and push the local stand-in")
    p.add_argument("--registry", default="127.0.0.1:5000", help="registry for the stand-in")
    p.add_argument(
        "--arch",
        action="append",
        choices=["amd64", "arm64"],
        help="architecture(s) of the stand-in (repeatable; default amd64 and arm64)",
    )
    p.add_argument(
        "--vendor",
        action="append",
        metavar="REF",
        help="vendor image to map to the stand-in (repeatable; default: the demo's)",
    )
    p.add_argument("--map", type=Path, default=DEFAULT_MAP, help="vendor map file to write")
    p.add_argument(
        "--no-sbom-scanner",
        dest="sbom_scanner",
        action="store_false",
        help="do not build the SBOM scanner (`tf2aif bake --sbom` then needs another generator)",
    )
    p.add_argument(
        "--ca-cert",
        help="CA bundle for HTTPS proxies while the scanner image installs syft (never stored in it)",
    )
    p.add_argument("--print", action="store_true", help="show the commands, run nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tf2aif.bases import standins as bases
    from tf2aif.bases.folders import base_folders
    from tf2aif.cli.common import find_proxy_ca, write_proxy_ca
    from tf2aif.resources import data_dir

    if not args.local:
        given = [
            flag
            for flag, value, default in (
                ("--registry", args.registry, "127.0.0.1:5000"),
                ("--arch", args.arch, None),
                ("--vendor", args.vendor, None),
                ("--map", args.map, DEFAULT_MAP),
                ("--no-sbom-scanner", args.sbom_scanner, True),
                ("--ca-cert", args.ca_cert, None),
                ("--print", args.print, False),
            )
            if value != default
        ]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --local")
        for folder in base_folders(data_dir("base_images")):
            print(f"{folder.name:20} {folder.vendor_default}")
        return 0
    sources = DEBIAN_SOURCES.read_text() if DEBIAN_SOURCES.is_file() else ""
    plan = bases.plan_stand_ins(
        env=os.environ,
        registry=args.registry,
        arches=args.arch or ["amd64", "arm64"],
        vendor_refs=args.vendor or bases.DEMO_VENDOR_REFS,
        map_file=args.map,
        sources_text=sources,
    )
    scanner = (
        bases.plan_sbom_scanner(
            plan, registry=args.registry, folder=data_dir("base_images") / "sbom-scanner"
        )
        if args.sbom_scanner
        else None
    )
    proxy_ca = find_proxy_ca(args.ca_cert) if scanner else None
    if args.print:  # shows where the CA bundle would go; assembles nothing
        _print_plan(plan, bases, scanner, str(proxy_ca.path) if proxy_ca else None)
        return 0
    ca_file = write_proxy_ca(proxy_ca)
    steps = bases.run_stand_ins(plan, env=os.environ, scanner=scanner, ca_file=ca_file)
    for step in steps:
        state = "cached" if step.cached else f"{step.seconds:.1f} s"
        print(f"{step.name:14} {state}")
    print(f"stand-in  {plan.image} ({', '.join(plan.platforms)})")
    if scanner:
        print(f"sbom scanner {scanner.image} (replaces {scanner.replaces})")
    print(f"vendor map {plan.map_file}: export TF2AIF_VENDOR_MAP={plan.map_file.resolve()}")
    return 0


def _print_plan(plan, bases, scanner, ca_file) -> None:
    for arch in plan.arches:
        cached = " (cached)" if plan.rootfs(arch).is_file() else ""
        argv = bases.mmdebstrap_argv(plan, arch, plan.rootfs(arch))
        print(f"{shlex.join(argv)}{cached}")
    print(shlex.join(bases.buildx_stand_in_argv(plan)))
    if scanner:
        print(shlex.join(bases.buildx_scanner_argv(scanner, ca_file)))
    print(f"# {plan.map_file}:")
    print(bases.render_vendor_map(bases.vendor_map(plan, scanner)), end="")
