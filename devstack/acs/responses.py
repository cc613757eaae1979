"""HTTP responses in the shapes the ACS SDKs parse: JSON bodies and the Azure error envelope.

Why: azure-core builds its exception text from `{"error": {"code", "message"}}` and the
`x-ms-error-code` header, and retries any 4xx that carries `Retry-After`; so errors are built in
one place, and only 429/503 ever get a `Retry-After`.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json; charset=utf-8"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# WhatsApp recipients appear with and without "+" in the official samples
WHATSAPP_NUMBER = re.compile(r"^\+?[1-9]\d{6,14}$")
# SMS may come from a number or, in some countries, an alphanumeric sender ID (1-11 characters)
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class ApiError(Exception):
    """A request the emulator refuses; becomes `{"error": {"code", "message"}}` with `x-ms-error-code`."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(body).encode("utf-8"), headers=headers)
    response.headers["Content-Type"] = JSON_TYPE
    return response


def error_response(error: ApiError) -> web.Response:
    headers = {"x-ms-error-code": error.code}
    if error.status in _RETRY_AFTER_STATUSES and error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    body = {"error": {"code": error.code, "message": error.message}}
    return json_response(body, status=error.status, headers=headers)


def bad_request(message: str, code: str = "BadRequest") -> ApiError:
    return ApiError(400, code, message)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 the SDK can show."""
    try:
        body = json.loads(await request.read() or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def require_str(body: dict[str, Any], key: str, what: str | None = None) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"The {what or key} field is required.")
    return value


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def canonical(value: Any) -> str:
    """A stable JSON text of a value, so equal content always hashes the same."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
