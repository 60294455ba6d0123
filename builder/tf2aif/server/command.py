"""`tf2aif serve ARTIFACT_DIR`: the image's server, run locally (same options, same code)."""

from __future__ import annotations

import argparse
import os

from tf2aif.server.options import add_arguments, resolve_options

__all__ = ["add_parsers", "run"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a converted artifact over the Open Inference Protocol (KServe v2)",
        description="Serve a converted artifact exactly as its image does: OIP over HTTP and gRPC, "
        "/predict through the processing hooks, /metrics, /docs. Options also read TF2AIF_* env vars.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tf2aif.server.run import serve  # uvicorn, numpy, runtimes: only when serving

    options = resolve_options(args, os.environ)
    grpc = f", gRPC on {options.host}:{options.grpc_port}" if options.grpc_port else ""
    print(
        f"serving {options.artifact_dir} on http://{options.host}:{options.port} "
        f"(docs at /docs){grpc}"
    )
    serve(options)
    return 0
