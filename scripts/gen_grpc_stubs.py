"""Regenerate the server's gRPC descriptor from builder/tf2aif/server/grpc_predict_v2.proto.

    python scripts/gen_grpc_stubs.py [OUT_DIR]  (needs grpcio-tools, from the test extra)

grpcio-tools' protoc compiles the proto into a FileDescriptorSet (grpc_predict_v2.binpb), which
is committed; tf2aif.server.grpc_messages builds the message classes from it at import time, in
a descriptor pool of its own. So images need only grpcio and protobuf (any release since 4.25,
whatever a vendor image ships), and the classes never clash with another `inference.*` module
in the same process (tritonclient's, KServe's, MLServer's). tests/server/test_grpc_stubs.py
checks that regenerating gives the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOT = REPO / "builder"
PROTO = "tf2aif/server/grpc_predict_v2.proto"
DESCRIPTOR = "grpc_predict_v2.binpb"


def generate(out_dir: Path) -> Path:
    """Write the descriptor set to out_dir/DESCRIPTOR and return its path."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / DESCRIPTOR
    code = protoc.main(
        ["grpc_tools.protoc", f"--proto_path={SOURCE_ROOT}", f"--descriptor_set_out={out}", PROTO]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return out


if __name__ == "__main__":
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE_ROOT / "tf2aif" / "server"
    print(generate(out_dir))
    sys.exit(0)
