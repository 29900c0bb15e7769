"""Normalize cell formats and colors the way Sheets stores them.

Sheets keeps color channels as 8-bit values and reports them as 32-bit
floats, omitting zero channels: a requested ``{"red": 1.0, "green": 0.0,
"blue": 0.5}`` reads back as ``{"red": 1, "blue": 0.49803922}``.  It also
fills the newer ``*ColorStyle`` field from the legacy ``*Color`` field and the
other way round, so both appear in responses.
"""

from __future__ import annotations

import copy
import logging
import math
import struct
from typing import Any

logger = logging.getLogger(__name__)

_CHANNELS = ("red", "green", "blue")
# (legacy color key, style key) pairs mirrored into each other.
_MIRRORED = (("backgroundColor", "backgroundColorStyle"), ("foregroundColor", "foregroundColorStyle"),
             ("tabColor", "tabColorStyle"))


def float32(value: float) -> float | int:
    """Return the shortest decimal that reads back as the same 32-bit float."""
    packed = struct.pack("<f", value)
    single = struct.unpack("<f", packed)[0]
    for digits in range(1, 10):
        candidate = float(f"{single:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return int(candidate) if candidate.is_integer() else candidate
    return single


def normalize_color(color: dict[str, Any] | None) -> dict[str, Any]:
    """Quantize a Color to 8-bit channels and drop zero channels."""
    normalized: dict[str, Any] = {}
    for channel in _CHANNELS:
        value = (color or {}).get(channel)
        if value is None:
            continue
        # Sheets rounds a half step down: 0.5 becomes 127/255, not 128/255.
        quantized = float32(math.ceil(float(value) * 255 - 0.5) / 255)
        if quantized:
            normalized[channel] = quantized
    if color and color.get("alpha") is not None:
        normalized["alpha"] = float32(float(color["alpha"]))
    return normalized


def normalize_format(cell_format: dict[str, Any]) -> dict[str, Any]:
    """Return a CellFormat (or SheetProperties) with colors normalized and mirrored."""
    result = copy.deepcopy(cell_format)
    _normalize_colors_in(result)
    text_format = result.get("textFormat")
    if isinstance(text_format, dict):
        _normalize_colors_in(text_format)
    return result


def _normalize_colors_in(container: dict[str, Any]) -> None:
    for legacy_key, style_key in _MIRRORED:
        if legacy_key in container and isinstance(container[legacy_key], dict):
            container[legacy_key] = normalize_color(container[legacy_key])
        style = container.get(style_key)
        if isinstance(style, dict) and isinstance(style.get("rgbColor"), dict):
            style["rgbColor"] = normalize_color(style["rgbColor"])
        elif isinstance(style, dict) and "rgbColor" in style and style["rgbColor"] is None:
            style.pop("rgbColor")
        if legacy_key in container and style_key not in container:
            container[style_key] = {"rgbColor": copy.deepcopy(container[legacy_key])}
        elif isinstance(container.get(style_key), dict) and "rgbColor" in container[style_key]:
            container.setdefault(legacy_key, copy.deepcopy(container[style_key]["rgbColor"]))
        if container.get(style_key) == {}:
            container.pop(style_key)
