"""SMS encoding and segment count (GSM-7 or UCS-2), as carriers bill them.

Why: the segment count drives both the cost estimate and the configurable size limit, and a single
non-GSM character (an emoji, a curly quote) silently switches the whole message to UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = set("^{}\\[~]|€\f")


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    units: int
    segments: int


def _gsm7_units(text: str) -> int | None:
    units = 0
    for char in text:
        if char in _GSM7_BASIC:
            units += 1
        elif char in _GSM7_EXTENSION:
            units += 2  # escape + character
        else:
            return None
    return units


def count_segments(text: str) -> SegmentInfo:
    """Encoding, code units and segments of `text` (single 160/70, concatenated 153/67)."""
    gsm_units = _gsm7_units(text)
    if gsm_units is not None:
        single, multi, units, encoding = 160, 153, gsm_units, Encoding.GSM7
    else:
        single, multi, encoding = 70, 67, Encoding.UCS2
        units = len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= single else -(-units // multi)
    return SegmentInfo(encoding=encoding, units=units, segments=segments)
