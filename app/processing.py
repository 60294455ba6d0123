"""Pre/post-processing for the demo digits model.

preprocess: a PNG/JPEG of a digit (any size, dark ink on light paper or the reverse), or JSON
            {"pixels": 8x8 list of 0..16 values}, becomes the model input `image` (1x8x8x1 float32).
postprocess: softmax probabilities become {"digit": int, "confidence": float, "top3": [...]}.
"""

from __future__ import annotations

import io
import json

import numpy as np


def preprocess(payload: bytes, content_type: str):
    if content_type.startswith("application/json"):
        pixels = np.asarray(json.loads(payload)["pixels"], dtype=np.float32)
        if pixels.shape != (8, 8):
            raise ValueError(f"pixels must be 8x8, got {list(pixels.shape)}")
        image = pixels / 16.0
    elif content_type.startswith("image/"):
        from PIL import Image

        gray = Image.open(io.BytesIO(payload)).convert("L").resize((8, 8), Image.BILINEAR)
        image = np.asarray(gray, dtype=np.float32) / 255.0
        if image.mean() > 0.5:  # the training digits are light ink on a dark background
            image = 1.0 - image
    else:
        raise ValueError(
            f"unsupported content type {content_type!r}; send image/png, image/jpeg or application/json"
        )
    return {"image": image.reshape(1, 8, 8, 1).astype(np.float32)}


def postprocess(outputs):
    probabilities = np.asarray(next(iter(outputs.values()))).reshape(-1)
    top = np.argsort(probabilities)[::-1][:3]
    return {
        "digit": int(top[0]),
        "confidence": float(probabilities[top[0]]),
        "top3": [{"digit": int(i), "probability": float(probabilities[i])} for i in top],
    }
