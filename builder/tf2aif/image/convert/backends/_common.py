"""Small helpers shared by the backends."""

from __future__ import annotations

from tf2aif.errors import ConversionError
from tf2aif.image.convert.job import ConvertJob

__all__ = ["require_precision"]


def require_precision(job: ConvertJob, backend: str, supported: tuple[str, ...]) -> None:
    if job.spec.precision not in supported:
        raise ConversionError(
            f"the {backend} backend converts {', '.join(supported)}, not {job.spec.precision!r}",
            variant=job.variant,
        )
