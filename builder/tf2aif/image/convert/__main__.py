"""The conversion build stage: `python -m tf2aif.image.convert --spec JSON --root /src --out /out`.

Prints what was converted and the fidelity table; on failure prints `error: <variant>: <why>`
and exits 1, so the build log says which variant failed and why.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tf2aif.errors import Tf2aifError
from tf2aif.image.convert.spec import ConvertSpec

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf2aif.image.convert", description=__doc__)
    parser.add_argument("--spec", required=True, help="ConvertSpec JSON, or @FILE holding it")
    parser.add_argument("--root", type=Path, required=True, help="folder the spec's paths are in")
    parser.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    from tf2aif.image.convert.fidelity import format_report
    from tf2aif.image.convert.pipeline import run_conversion, variant_of

    try:
        text = Path(args.spec[1:]).read_text() if args.spec.startswith("@") else args.spec
        spec = ConvertSpec.from_json(text)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        print(f"error: invalid --spec: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    variant = variant_of(spec)
    try:
        info = run_conversion(spec, root=args.root, out=args.out)
    except Tf2aifError as exc:
        if args.debug:
            raise
        message = str(exc)
        if not message.startswith(f"{variant}:"):
            message = f"{variant}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    seconds = info.options.get("conversion_seconds", 0)
    print(f"{variant}: converted in {seconds:.1f} s -> {args.out / info.model_file}")
    print(format_report(info.fidelity))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
