"""A pixel budget for images that processing modules decode with Pillow.

A small compressed file can declare a huge image (a decompression bomb): a 50 KB PNG of
20000 x 20000 pixels decodes to 400 MB-1.6 GB. Pillow reads the size from the header when the
file is opened; with the budget set, `Image.open` raises on anything larger, before decoding.
"""

from __future__ import annotations

import warnings

__all__ = ["limit_image_decoding"]


def limit_image_decoding(max_pixels: int) -> None:
    """Pillow refuses images over `max_pixels` (0: no limit) in this process, for every plug-in.

    Pillow only warns between its limit and twice that; the warning is made an error so the
    budget is the limit itself. Without Pillow there is nothing to limit.
    """
    try:
        from PIL import Image
    except ImportError:
        return
    Image.MAX_IMAGE_PIXELS = max_pixels or None
    warnings.simplefilter("error", Image.DecompressionBombWarning)
