"""`tf`: the native baseline, the SavedModel itself (its chosen signature as serving_default)."""

from __future__ import annotations

import shutil

from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.job import ConvertJob, ConvertResult
from tf2aif.image.convert.source import DEFAULT_SIGNATURE

__all__ = ["convert"]


def convert(job: ConvertJob) -> ConvertResult:
    require_precision(job, "tf", ("fp32",))
    shutil.copytree(job.saved_model, job.model_dir / "saved_model")
    return ConvertResult(
        model_file="model/saved_model",
        options={"signature": DEFAULT_SIGNATURE},
        tools=("tensorflow", "keras"),
        check_with="tf",
    )
