"""Arguments and inputs several commands share: the manifest arguments and the proxy CA."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SYSTEM_CERTS", "ProxyCA", "add_manifest_args", "find_proxy_ca", "write_proxy_ca"]

SYSTEM_CERTS = Path("/usr/local/share/ca-certificates")


def add_manifest_args(p: argparse.ArgumentParser) -> None:
    """MANIFEST (file or folder) and --vendor-map, as every manifest-reading command takes them."""
    p.add_argument(
        "manifest",
        nargs="?",
        default="tf2aif.yaml",
        help="manifest file or its folder (default: tf2aif.yaml)",
    )
    p.add_argument(
        "--vendor-map",
        help="YAML/JSON mapping vendor image -> replacement (mirrors, stand-ins); default $TF2AIF_VENDOR_MAP",
    )


@dataclass(frozen=True, kw_only=True)
class ProxyCA:
    """The CA bundle handed to builds as a secret: an existing file, or one to assemble at
    `path` from the system's extra certificates (`parts`)."""

    path: Path
    parts: tuple[Path, ...] = ()


def find_proxy_ca(
    explicit: str | None,
    env: Mapping[str, str] = os.environ,
    *,
    certs: Path | None = None,
    scratch: Path | None = None,
) -> ProxyCA | None:
    """--ca-cert, else $TF2AIF_CA_FILE, else the certificates installed in `certs` (a proxy's
    CA on this machine); None when there is none. Reads a folder listing, writes nothing."""
    if explicit:
        return ProxyCA(path=Path(explicit))
    if env.get("TF2AIF_CA_FILE"):
        return ProxyCA(path=Path(env["TF2AIF_CA_FILE"]))
    certs = SYSTEM_CERTS if certs is None else certs
    parts = tuple(sorted(certs.glob("*.crt"))) if certs.is_dir() else ()
    if not parts:
        return None
    folder = scratch if scratch is not None else Path(tempfile.gettempdir()) / "tf2aif-ca"
    return ProxyCA(path=folder / "ca.pem", parts=parts)


def write_proxy_ca(ca: ProxyCA | None) -> str | None:
    """Assemble the bundle if it is made of parts; the path to hand to the build, or None."""
    if ca is None:
        return None
    if ca.parts:
        ca.path.parent.mkdir(parents=True, exist_ok=True)
        ca.path.write_text("".join(part.read_text() for part in ca.parts))
    return str(ca.path)
