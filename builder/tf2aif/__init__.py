"""tf2aif: one TensorFlow model + one manifest -> a matrix of multi-arch inference images."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
