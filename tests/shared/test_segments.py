"""SMS encoding and segment counting."""

import pytest

from shared.segments import Encoding, count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, Encoding.GSM7, 1),
        ("a" * 161, Encoding.GSM7, 2),
        ("a" * 306, Encoding.GSM7, 2),
        ("a" * 307, Encoding.GSM7, 3),
        ("€" * 80, Encoding.GSM7, 1),
        ("€" * 81, Encoding.GSM7, 2),
        ("é" * 70, Encoding.GSM7, 1),
        ("ж" * 70, Encoding.UCS2, 1),
        ("ж" * 71, Encoding.UCS2, 2),
        ("hi 😀", Encoding.UCS2, 1),
    ],
)
def test_segments_follow_carrier_rules(text: str, encoding: Encoding, segments: int) -> None:
    """GSM-7 fits 160/153 per segment, extension characters count double, anything else is UCS-2 at 70/67."""
    info = count_segments(text)
    assert (info.encoding, info.segments) == (encoding, segments)


def test_one_emoji_switches_a_long_message_to_ucs2() -> None:
    """A single non-GSM character turns a one-segment GSM message into three UCS-2 segments."""
    assert count_segments("a" * 150).segments == 1
    assert count_segments("a" * 149 + "😀").segments == 3
