"""Which images a build makes: `--only` patterns over the plan, and the check that
`--changed` may trust the content tags (they must digest the build folder as written). Pure but
for reading that folder."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tf2aif.errors import PlanError
from tf2aif.pipeline.digests import CONTENT_DIGEST_LABEL, image_digests
from tf2aif.pipeline.plan import ClientTarget, Plan, ServeTarget

__all__ = ["check_content_tags", "select_images", "select_serves"]


def select_serves(plan: Plan, patterns: Sequence[str]) -> tuple[ServeTarget, ...]:
    """Server targets whose name or any variant id matches a pattern (`gpu/*`, `*-int8`)."""
    serves, _ = select_images(plan, patterns)
    return serves


def select_images(
    plan: Plan, patterns: Sequence[str]
) -> tuple[tuple[ServeTarget, ...], tuple[ClientTarget, ...]]:
    """(server targets, client targets) selected by --only patterns; no pattern selects all."""
    clients = (plan.client,) if plan.client else ()
    if not patterns:
        return plan.serves, clients

    def hit(*names: str) -> bool:
        return any(fnmatch.fnmatch(x, p) for p in patterns for x in names)

    serves = tuple(s for s in plan.serves if hit(s.name, *s.variants))
    clients = tuple(c for c in clients if hit(c.name))
    if not serves and not clients:
        ids = ", ".join(v.id for v in plan.variants)
        raise PlanError(f"--only {' '.join(patterns)} selects nothing; variants: {ids}")
    return serves, clients


def check_content_tags(serves: Sequence[ServeTarget], bake: Mapping[str, Any], root: Path) -> None:
    """Each image's content tag is the digest of the bake graph as written, read from the files
    on disk: a published tag is only trusted by --changed if it names what this build reads."""
    digests = image_digests(bake, [s.name for s in serves], root=root)
    stale = [s.name for s in serves if digests[s.name] != s.labels.get(CONTENT_DIGEST_LABEL)]
    if stale:
        raise PlanError(
            f"the build folder no longer matches the plan for {', '.join(stale)} "
            "(an input changed while planning): run the command again"
        )
