"""Regenerate the gRPC stubs of the server from builder/tf2aif/server/grpc_predict_v2.proto.

    python scripts/gen_grpc_stubs.py            (needs grpcio-tools, from the test extra)

The generated modules are committed, so images need only grpcio and protobuf at run time;
tests/server/test_grpc_stubs.py checks that regenerating gives the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOT = REPO / "builder"
PROTO = Path("tf2aif/server/grpc_predict_v2.proto")  # relative: imports come out as tf2aif.server
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules under out_dir/tf2aif/server/ and return their paths."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={SOURCE_ROOT}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [out_dir / PROTO.parent / name for name in GENERATED]


if __name__ == "__main__":
    written = generate(SOURCE_ROOT)
    print("\n".join(str(path.relative_to(REPO)) for path in written))
    sys.exit(0)
