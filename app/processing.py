"""Pre/post-processing for the demo digits model.

preprocess: a PNG/JPEG of a digit (any size, dark ink on light paper or the reverse), or JSON
            {"pixels": 8x8 list of 0..16 values}, becomes the model input `image` (1x8x8x1 float32).
            Images over the pixel budget are refused before any pixel is decoded: the server's
            --max-image-pixels (env TF2AIF_MAX_IMAGE_PIXELS, default 4096x4096) sets Pillow's
            limit, which this module reads.
postprocess: softmax probabilities become {"digit": int, "confidence": float, "top3": [...]}.

REQUEST_BODY and RESPONSE_SCHEMA describe both in the server's OpenAPI document (/openapi.json).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np

SIDE = 8
INK_MAX = 16  # the training digits' pixel scale

REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["pixels"],
                "properties": {
                    "pixels": {
                        "description": "8 rows of 8 ink values, 0 (paper) to 16 (ink)",
                        "type": "array",
                        "minItems": SIDE,
                        "maxItems": SIDE,
                        "items": {
                            "type": "array",
                            "minItems": SIDE,
                            "maxItems": SIDE,
                            "items": {"type": "number", "minimum": 0, "maximum": INK_MAX},
                        },
                    }
                },
            }
        },
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    },
}
RESPONSE_SCHEMA = {
    "type": "object",
    "required": ["digit", "confidence", "top3"],
    "properties": {
        "digit": {"type": "integer", "minimum": 0, "maximum": 9},
        "confidence": {"type": "number"},
        "top3": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "digit": {"type": "integer"},
                    "probability": {"type": "number"},
                },
            },
        },
    },
}


def preprocess(payload: bytes, content_type: str):
    if content_type.startswith("application/json"):
        image = _pixels(json.loads(payload)) / INK_MAX
    elif content_type.startswith("image/"):
        image = _decode(payload)
    else:
        raise ValueError(
            f"unsupported content type {content_type!r}; send image/png, image/jpeg or application/json"
        )
    return {"image": image.reshape(1, SIDE, SIDE, 1).astype(np.float32)}


def _pixels(document) -> np.ndarray:
    if not isinstance(document, dict) or "pixels" not in document:
        raise ValueError('send a JSON object {"pixels": 8 rows of 8 values from 0 to 16}')
    rows = document["pixels"]
    if not (
        isinstance(rows, list)
        and len(rows) == SIDE
        and all(isinstance(row, list) and len(row) == SIDE for row in rows)
    ):
        raise ValueError("pixels must be 8 rows of 8 values")
    values = [value for row in rows for value in row]
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError("pixels must be numbers")
    pixels = np.asarray(values, dtype=np.float64).reshape(SIDE, SIDE)
    if pixels.min() < 0 or pixels.max() > INK_MAX:
        raise ValueError(f"pixel values must be within 0..{INK_MAX}")
    return pixels.astype(np.float32)


def _decode(payload: bytes) -> np.ndarray:
    from PIL import Image

    picture = Image.open(io.BytesIO(payload))  # reads the header only
    width, height = picture.size
    budget = Image.MAX_IMAGE_PIXELS
    if budget and width * height > budget:
        raise Image.DecompressionBombError(
            f"image of {width}x{height} = {width * height} pixels is over the budget of "
            f"{budget} pixels"
        )
    picture.draft("L", (SIDE * 4, SIDE * 4))  # JPEG: decode at a reduced scale, grayscale
    gray = picture.convert("L").resize((SIDE, SIDE), Image.BILINEAR)  # first frame only
    image = np.asarray(gray, dtype=np.float32) / 255.0
    if image.mean() > 0.5:  # the training digits are light ink on a dark background
        image = 1.0 - image
    return image


def postprocess(outputs):
    probabilities = np.asarray(next(iter(outputs.values()))).reshape(-1)
    top = np.argsort(probabilities)[::-1][:3]
    return {
        "digit": int(top[0]),
        "confidence": float(probabilities[top[0]]),
        "top3": [{"digit": int(i), "probability": float(probabilities[i])} for i in top],
    }
