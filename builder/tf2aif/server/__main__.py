"""`python -m tf2aif.server ARTIFACT_DIR [options]`: the entry point of every tf2aif image."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tf2aif.errors import Tf2aifError
from tf2aif.server.options import add_arguments, resolve_options


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tf2aif.server",
        description="Serve a tf2aif artifact over the Open Inference Protocol (KServe v2) on HTTP and gRPC. "
        "Every option can also be set as an env var TF2AIF_<OPTION>.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        from tf2aif.server.run import serve

        serve(resolve_options(args, os.environ))
    except Tf2aifError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
