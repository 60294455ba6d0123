"""BuildKit SBOM generator: syft over every file system BuildKit passes, one statement each.

BuildKit runs this image with the build result's root file system mounted read-only at
$BUILDKIT_SCAN_SOURCE, optional further root file systems (build stages, contexts) as the
folders of $BUILDKIT_SCAN_SOURCE_EXTRAS, and collects every JSON file it finds in
$BUILDKIT_SCAN_DESTINATION as an in-toto statement. Each file system gets one statement named
after it (`sbom.spdx.json` for the core scan, which BuildKit recognises by that name) whose
predicate is syft's SPDX 2.3 JSON document (its creationInfo comment names the platform the scan
ran on). Nothing else is scanned or written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

STATEMENT_TYPE = "https://in-toto.io/Statement/v0.1"
SPDX_PREDICATE = "https://spdx.dev/Document"


def log(message: str) -> None:
    print(f"sbom-scanner: {message}", file=sys.stderr, flush=True)


def sources(env: Mapping[str, str]) -> list[Path]:
    """The core file system first, then each extra one (none when the variable is unset,
    empty or names a folder that does not exist)."""
    core = env.get("BUILDKIT_SCAN_SOURCE")
    if not core:
        raise SystemExit("sbom-scanner: BUILDKIT_SCAN_SOURCE is not set")
    found = [Path(core)]
    extras = Path(env.get("BUILDKIT_SCAN_SOURCE_EXTRAS") or "/nonexistent")
    if extras.is_dir():
        found += sorted(p for p in extras.iterdir() if p.is_dir())
    return found


def syft_argv(source: Path, output: Path) -> list[str]:
    # --base-path keeps absolute symlinks inside the scanned root and reports in-image paths;
    # the image catalogers read what is installed (dpkg, apk, rpm, Python dist-info, ...),
    # not the declared-dependency files a source-tree scan would also pick up.
    return [
        "syft",
        "scan",
        f"dir:{source}",
        "--base-path",
        str(source),
        "--override-default-catalogers",
        "image",
        "--source-name",
        source.name,
        "--quiet",
        "--output",
        f"spdx-json={output}",
    ]


def statement(document: dict) -> dict:
    """Subjects stay empty: BuildKit sets them to the image the attestation is attached to."""
    return {
        "_type": STATEMENT_TYPE,
        "predicateType": SPDX_PREDICATE,
        "subject": [],
        "predicate": document,
    }


def main(env: Mapping[str, str] = os.environ) -> int:
    destination = env.get("BUILDKIT_SCAN_DESTINATION")
    if not destination:
        raise SystemExit("sbom-scanner: BUILDKIT_SCAN_DESTINATION is not set")
    where = f"{platform.system().lower()}/{platform.machine()}"
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources(env):
            raw = Path(tmp) / f"{source.name}.json"
            subprocess.run(syft_argv(source, raw), check=True)
            document = json.loads(raw.read_text())
            # Where the scan ran: BuildKit picks the generator's platform, not the target's.
            document.setdefault("creationInfo", {})["comment"] = (
                f"tf2aif sbom-scanner: syft on {where} scanned {source.name}"
            )
            target = Path(destination) / f"{source.name}.spdx.json"
            target.write_text(json.dumps(statement(document), separators=(",", ":")))
            packages = len(document.get("packages") or ())
            log(f"{source} -> {target.name}: {packages} packages (syft on {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
