"""The Flex delegate: how a TFLite model holding TensorFlow ops (Select TF ops) runs.

Neither LiteRT (`ai-edge-litert`) nor the `tensorflow` pip from 2.20 on links it; up to 2.18.1,
`tf.lite.Interpreter` applies it by itself whenever the library that defines
`TF_AcquireFlexDelegate` is loaded. So the Flex path (conversion, calibration, fidelity check,
serving) runs on TensorFlow 2.18.1, and this module tells whether the TensorFlow at hand can.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["FLEX_TENSORFLOW", "flex_available", "flex_interpreter_class", "no_flex_reason"]

FLEX_TENSORFLOW = "2.18.1"  # the last TensorFlow pip that links the Flex delegate
_FLEX_SYMBOL = "TF_AcquireFlexDelegate"
_LIBRARIES = ("libtensorflow_cc.so.2", "python/_pywrap_tensorflow_internal.so")


@cache
def flex_available() -> bool:
    """Whether this process's TensorFlow defines the Flex delegate (False without TensorFlow)."""
    try:
        import tensorflow as tf
    except ImportError:
        return False
    root = Path(tf.__file__).parent
    for name in _LIBRARIES:
        if (root / name).is_file():
            try:  # already loaded by the import: this only looks the symbol up
                if hasattr(ctypes.CDLL(str(root / name)), _FLEX_SYMBOL):
                    return True
            except OSError:
                continue
    return False


def no_flex_reason() -> str:
    """Why the TensorFlow at hand cannot run Select TF ops, and what can."""
    try:
        import tensorflow as tf

        here = f"TensorFlow {tf.__version__} has no Flex delegate"
    except ImportError:
        here = "TensorFlow is not installed here"
    return (
        f"a Select TF ops model needs the Flex delegate: {here} (LiteRT and TensorFlow >= 2.20 "
        f"do not link it); run it with TensorFlow {FLEX_TENSORFLOW} (the convert-tflite-flex "
        "and serve-tflite-flex images)"
    )


def flex_interpreter_class() -> Any:
    """TensorFlow's own tf.lite.Interpreter, which applies Flex; None when it cannot."""
    if not flex_available():
        return None
    import warnings

    from tensorflow.lite.python.interpreter import Interpreter

    # its deprecation notice points to LiteRT, which has no Flex: not the user's to act on
    warnings.filterwarnings(
        "ignore",
        message=r"(?s).*(tf\.lite\.Interpreter is deprecated|Please use the LiteRT interpreter)",
    )
    return Interpreter
