"""`tf2aif lock` (write tf2aif.lock) and `tf2aif lock --check` (exit 1 naming what changed)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tf2aif.errors import EXIT_INVALID, EXIT_OK, LockError

__all__ = ["add_parsers", "run"]

_PROBED = "pip list in "


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lock",
        help="pin base image digests, tool versions and input digests in tf2aif.lock",
        description="Resolve every base image reference to a digest, record tool versions and a "
        "content digest of every input (manifest, model, plug-ins, recipes, base image folders) "
        "in tf2aif.lock next to the manifest. With --check, exit 1 naming what changed.",
    )
    p.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        default=Path("tf2aif.yaml"),
        help="manifest file or its folder (default: tf2aif.yaml)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="compare with tf2aif.lock instead of writing it; exit 1 naming what changed",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="with --check: compare files and image sources only, do not ask registries",
    )
    p.add_argument(
        "--vendor-map",
        help="YAML/JSON map vendor ref -> replacement ref, the one `tf2aif bake` gets "
        "(default: $TF2AIF_VENDOR_MAP)",
    )
    p.add_argument(
        "--resolver",
        choices=("buildx", "registry"),
        default="buildx",
        help="buildx: `docker buildx imagetools inspect` (docker credentials); "
        "registry: the registry HTTP API directly (anonymous)",
    )
    p.add_argument(
        "--tools-from",
        action="append",
        default=[],
        metavar="FOLDER=IMAGE",
        help="record the versions `pip list` reports in a built base image instead of the "
        "requirements.txt pins of that base folder (repeatable)",
    )
    p.add_argument(
        "--write-vendor-map",
        type=Path,
        metavar="FILE",
        help="also write the locked digests as a vendor map (ref -> ref@sha256:...) for "
        "`tf2aif bake --vendor-map`; with --check, only when the check passes",
    )
    p.add_argument("--print", action="store_true", help="print the lock instead of writing it")
    p.set_defaults(func=run)


def _tool_images(specs: list[str]) -> dict[str, str]:
    images = {}
    for spec in specs:
        folder, sep, image = spec.partition("=")
        if not sep or not folder or not image:
            raise LockError(
                f"--tools-from {spec!r}: expected FOLDER=IMAGE, e.g. convert-tf=reg/b:1"
            )
        images[folder] = image
    return images


def _inputs(args: argparse.Namespace, locked_tools: Mapping = ()):
    from tf2aif.cli.pipeline import read_vendor_map
    from tf2aif.lock.inputs import plan_inputs
    from tf2aif.lock.resolvers import probe_tools

    env = dict(os.environ)
    inputs = plan_inputs(
        args.manifest,
        env=env,
        vendor_map=read_vendor_map(args.vendor_map or env.get("TF2AIF_VENDOR_MAP")),
    )
    tools = dict(inputs.tools)
    probes = _tool_images(args.tools_from)
    for folder, toolset in dict(locked_tools).items():
        if toolset.source.startswith(_PROBED) and folder not in probes:
            tools[folder] = toolset  # probed once from a built image: not re-probed on --check
    for folder, image in probes.items():
        tools[folder] = probe_tools(image)
    return dataclasses.replace(inputs, tools=tools)


def _resolver(args: argparse.Namespace):
    from tf2aif.lock.resolvers import resolve_with_buildx, resolve_with_registry

    if args.resolver == "registry":
        return resolve_with_registry
    return resolve_with_buildx


def run(args: argparse.Namespace) -> int:
    from tf2aif.lock import lockfile as lock
    from tf2aif.pipeline.yamlfile import file_problem

    problem = file_problem(args.manifest, what="manifest", folder_ok=True)
    if problem:
        raise LockError(problem)
    folder = args.manifest if args.manifest.is_dir() else args.manifest.parent
    lock_path = folder / lock.LOCK_FILE
    if args.check:
        return _check(args, lock_path)
    if args.offline:
        raise LockError("--offline only applies to --check (writing a lock resolves digests)")
    result = lock.build_lock(_inputs(args), _resolver(args))
    if args.print:
        print(lock.dump_lock(result), end="")
        return EXIT_OK
    lock.write_lock(lock_path, result)
    print(f"wrote {lock_path}: {len(result.files)} files, {len(result.images)} images")
    if args.write_vendor_map:
        lock.write_vendor_map(args.write_vendor_map, result)
        print(f"wrote {args.write_vendor_map}")
    return EXIT_OK


def _check(args: argparse.Namespace, lock_path: Path) -> int:
    from tf2aif.lock import lockfile as lock

    old = lock.load_lock(lock_path)
    resolve = None if args.offline else _resolver(args)
    changes = lock.check_lock(old, _inputs(args, old.tools), resolve)
    if not changes:
        what = "files and image sources" if args.offline else "files, images and tools"
        print(f"{lock_path} is up to date ({what} checked)")
        if args.write_vendor_map:  # the locked digests, for `tf2aif bake --vendor-map`
            lock.write_vendor_map(args.write_vendor_map, old)
            print(f"wrote {args.write_vendor_map}")
        return EXIT_OK
    print(f"{lock_path} is out of date ({len(changes)} change(s)):", file=sys.stderr)
    for line in changes:
        print(f"  {line}", file=sys.stderr)
    if any(" now comes from " in line for line in changes):
        print("(pass the vendor map the lock was written with: --vendor-map)", file=sys.stderr)
    print("run `tf2aif lock` and commit tf2aif.lock if these changes are intended", file=sys.stderr)
    return EXIT_INVALID
