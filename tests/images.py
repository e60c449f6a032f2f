"""Small image fixtures made in the tests (no data from outside): single images in PNG or JPEG and
tables in Hugging Face's image schema."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from PIL import Image


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def fixture_image(i: int) -> Image.Image:
    """Every third image is grayscale 'L' mode; the rest are RGB with a per-channel pattern."""
    if i % 3 == 0:
        return Image.fromarray(np.full((64, 64), 10 * i % 256, dtype=np.uint8), mode="L")
    arr = np.zeros((64, 64, 3), dtype=np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 200, 7 * i % 256, 50
    return Image.fromarray(arr)


def hf_table(n: int, offset: int = 0) -> pa.Table:
    """Hugging Face's image schema: image = struct{bytes, path}, label = int64 in 0..5."""
    images, labels = [], []
    for i in range(offset, offset + n):
        fmt = "JPEG" if i % 2 else "PNG"
        images.append({"bytes": png_bytes(fixture_image(i), fmt), "path": f"{i}.{fmt.lower()}"})
        labels.append(i % 6)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.table({"image": pa.array(images, type=image_type), "label": pa.array(labels, pa.int64())})
