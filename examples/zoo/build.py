"""Build the zoo's models into a folder (SavedModels, and one .keras file), deterministically.

    python examples/zoo/build.py OUT_DIR [--models a,b,...]

Writes OUT_DIR/models/<name> (or <name>.keras) and copies samples.py and zoo_models.py next to
them so OUT_DIR is a project root the converter's plug-in paths resolve against.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from zoo_models import MODELS, build, by_name  # noqa: E402

PLUGINS = ("samples.py", "zoo_models.py")


def build_zoo(root: Path, names: list[str] | None = None, *, log=print) -> dict[str, Path]:
    """Build the named models (all by default) under root; skip those already there."""
    root.mkdir(parents=True, exist_ok=True)
    for plugin in PLUGINS:
        shutil.copy2(HERE / plugin, root / plugin)
    chosen = [by_name(n) for n in names] if names else list(MODELS)
    built = {}
    for model in chosen:
        target = root / model.path
        if not target.exists():
            started = time.perf_counter()
            build(model, root)
            log(f"built {model.name} in {time.perf_counter() - started:.1f} s -> {target}")
        built[model.name] = target
    return built


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", help="comma-separated names (default: all)")
    args = parser.parse_args(argv)
    build_zoo(args.out, args.models.split(",") if args.models else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
