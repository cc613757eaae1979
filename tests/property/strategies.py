"""Hypothesis strategies for what producers (and attackers) put on the send queue or POST to the intake:
any JSON value, mutations of valid requests, the shapes `json` accepts but storage cannot hold, and
bytes that are not text at all."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

VALID_REQUESTS: list[dict[str, Any]] = [
    {"channel": "sms", "to": "+14255550100", "content": {"text": "Your code is 123456"}},
    {
        "channel": "email",
        "to": "ann@example.com",
        "content": {
            "subject": "Invoice",
            "text": "attached",
            "attachments": [{"name": "a.pdf", "contentType": "application/pdf", "contentInBase64": "QUFB"}],
        },
    },
    {
        "channel": "whatsapp",
        "to": "+14255550100",
        "content": {"template": {"name": "otp", "language": "en", "values": {"1": "x"}, "bodyBindings": ["1"]}},
    },
]

ODD_STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", " ", "\r\n", "\x00", "a\rb", "😀" * 3, "\u2028", "../x", "a/b", "+1 425 555 0100", "1e309", "NaN"]
    ),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=400),
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_STRINGS,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `path` (a missing path is created; DELETE removes the key)."""
    copy = json.loads(json.dumps(data))
    node = copy
    for key in path[:-1]:
        child = node.get(key)
        node[key] = child if isinstance(child, dict) else {}
        node = node[key]
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return copy


DELETE = object()
PATHS = st.sampled_from(
    [
        ["id"],
        ["channel"],
        ["to"],
        ["from"],
        ["schemaVersion"],
        ["expiresAt"],
        ["purpose"],
        ["delivery"],
        ["correlationId"],
        ["metadata"],
        ["metadata", "k"],
        ["content"],
        ["content", "text"],
        ["content", "subject"],
        ["content", "html"],
        ["content", "replyTo"],
        ["content", "attachments"],
        ["content", "template"],
        ["content", "template", "values"],
        ["surprise"],
    ]
)


@st.composite
def mutated_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with one to three fields replaced by any JSON value or removed."""
    data = draw(st.sampled_from(VALID_REQUESTS))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        data = _set_path(data, draw(PATHS), draw(st.one_of(JSON_VALUES, st.just(DELETE))))
    return data


def nested(depth: int, kind: str) -> str:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opener * depth + "1" + closer * depth


HOSTILE_TEXTS = st.one_of(
    st.builds(nested, st.integers(min_value=11, max_value=12_000), st.sampled_from(["list", "dict"])),
    st.integers(min_value=20, max_value=6_000).map(lambda n: '{"metadata": {"n": ' + "7" * n + "}}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400"]).map(lambda v: '{"metadata": {"n": ' + v + "}}"),
    st.sampled_from(['{"to": "a", "to": "b"}', '{"channel": "sms", "channel": "email"}']),
    st.sampled_from(["\\ud800", "a\\udfffb", "\\ud83d"]).map(lambda s: '{"channel": "sms", "to": "' + s + '"}'),
    st.sampled_from(
        [
            '{"schemaVersion": 1, "id": "x-1", "payloadRef": "../other/x.json"}',
            '{"schemaVersion": 1, "id": "x-1", "payloadRef": "x-1/' + "0" * 32 + '.json"}',
            '{"schemaVersion": true, "channel": "sms", "to": "+14255550100", "content": {"text": "x"}}',
            '{"expiresAt": 1900000000, "channel": "sms", "to": "+14255550100", "content": {"text": "x"}}',
        ]
    ),
)
NOT_UTF8 = st.binary(min_size=1, max_size=200).filter(lambda b: not is_utf8(b))


def is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _emoji_email(ascii_chars: int, emoji: int) -> bytes:
    """A valid email whose text mixes ASCII and characters beyond the BMP, up to the inline limit."""
    text = ("a" * ascii_chars) + ("😀" * emoji)
    body = {"channel": "email", "to": "ann@example.com", "content": {"subject": "s", "text": text}}
    return json.dumps(body, ensure_ascii=False).encode()


LARGE_VALID = st.builds(
    _emoji_email, st.integers(min_value=20_000, max_value=30_000), st.integers(min_value=3_000, max_value=4_500)
)

# Everything a producer could send as a request body.
BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    mutated_requests().map(lambda d: json.dumps(d).encode()),
    mutated_requests().map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    HOSTILE_TEXTS.map(str.encode),
    NOT_UTF8,
    st.binary(max_size=300),
    LARGE_VALID,
)

# Text a storage queue holds as it is: XML characters only (Azure refuses the rest at send time).
QUEUE_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\ufffe\uffff"),
        st.sampled_from("\t\n\r"),
    ),
    min_size=1,
    max_size=300,
)
