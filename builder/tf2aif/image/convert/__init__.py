"""Model conversion: one ConvertSpec in, one artifact directory (model, plug-ins, fidelity) out.

    from tf2aif.image.convert import ConvertSpec, run_conversion
    info = run_conversion(spec, root=Path("."), out=Path("out/tflite-int8"))

Backends live in `tf2aif.image.convert.backends` and are looked up by name through
`tf2aif.image.convert.registry`. TensorFlow and the runtimes are imported only when a conversion runs.
"""

from __future__ import annotations

from typing import Any

from tf2aif.image.convert.spec import ConvertSpec, PluginRef, Thresholds

__all__ = ["ConvertSpec", "PluginRef", "Thresholds", "run_conversion"]


def __getattr__(name: str) -> Any:
    if name == "run_conversion":  # keeps numpy and friends out of `import tf2aif.image.convert`
        from tf2aif.image.convert.pipeline import run_conversion

        return run_conversion
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
