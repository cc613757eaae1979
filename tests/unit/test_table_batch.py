"""The entity-group transaction envelope (shared/adapters/table_batch.py): the bytes it writes equal
azure-core's for the same operations, whatever the entities hold, and it reads the service's documented
response shapes, success and failure (against Azurite: tests/integration/test_table_batch.py)."""

from __future__ import annotations

import copy
from typing import Any

from azure.core import MatchConditions
from azure.core.rest import HttpRequest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.table_batch import batch_body, batch_error, operation_requests, parse_batch_response
from shared.errors import Conflict, EtagMismatch, PermanentError, TransientError

CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=dW5pdA==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
DATE = "Thu, 03 Dec 2026 09:23:46 GMT"
# Table Storage keys forbid / \ # ? and control characters; values take any text.
keys = st.text(st.characters(blacklist_characters="/\\#?", blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20)
values = st.one_of(
    st.text(max_size=50),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,15}", fullmatch=True).filter(lambda n: n not in {"PartitionKey", "RowKey"})


@st.composite
def operations(draw: st.DrawFn) -> list[Any]:
    partition = draw(keys)
    rows = draw(st.lists(keys, min_size=1, max_size=5, unique=True))
    ops: list[Any] = []
    for row in rows:
        entity = {"PartitionKey": partition, "RowKey": row, **draw(st.dictionaries(names, values, max_size=4))}
        kind = draw(st.sampled_from(["create", "merge", "replace", "upsert", "delete"]))
        etag = "W/\"datetime'2026-12-03T09%3A23%3A46.98Z'\""
        guarded = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        if kind == "merge":
            ops.append(("update", entity, {"mode": UpdateMode.MERGE, **guarded}))
        elif kind == "replace":
            ops.append(("update", entity, {"mode": UpdateMode.REPLACE, **guarded}))
        else:
            ops.append((kind, entity))
    return ops


def azure_core_body(requests: list[HttpRequest], batch: str, changeset: str) -> bytes:
    """The body azure-core writes for these requests (as `submit_transaction` has it written)."""
    requests = copy.deepcopy(requests)
    for request in requests:  # what the SDK's StorageHeadersPolicy adds to each operation
        request.headers["x-ms-date"] = DATE
        request.headers["Date"] = DATE
    inner = HttpRequest("POST", "")
    inner.set_multipart_mixed(*requests, boundary=changeset)
    outer = HttpRequest("POST", "http://127.0.0.1:10002/devstoreaccount1/$batch")
    outer.set_multipart_mixed(inner, enforce_https=False, boundary=batch)
    outer.prepare_multipart_body()
    return bytes(outer.content)


@settings(max_examples=60, deadline=None)
@given(operations())
def test_the_envelope_is_byte_for_byte_azure_cores(ops: list[Any]) -> None:
    client = TableClient.from_connection_string(CONNECTION, "messages")
    requests = operation_requests(client, ops)
    assert len(requests) == len(ops)
    ours = batch_body(requests, "batch_b", "changeset_c", DATE)
    assert ours == azure_core_body(requests, "batch_b", "changeset_c")


# The shapes of https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions
# ("Sample batch response", and a failed operation within a change set), with Azure's header spelling.
SUCCESS = (
    b"--batchresponse_7ab1553a-7dd6-4e7e-9b2d-c3a1bd86c6a9\r\n"
    b"Content-Type: multipart/mixed; boundary=changesetresponse_1ea7b9f7-ec83-4dbf-b31b-65e5c2ee1b79\r\n\r\n"
    b"--changesetresponse_1ea7b9f7-ec83-4dbf-b31b-65e5c2ee1b79\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nContent-ID: 1\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\nETag: W/\"datetime'2026-12-03T09%3A23%3A46.9812103Z'\"\r\n"
    b"Location: https://myaccount.table.core.windows.net/Blogs(PartitionKey='Channel_19',RowKey='1')\r\n"
    b"DataServiceVersion: 3.0;\r\n\r\n"
    b'{"odata.metadata":"https://myaccount.table.core.windows.net/$metadata#Blogs/@Element"}\r\n'
    b"--changesetresponse_1ea7b9f7-ec83-4dbf-b31b-65e5c2ee1b79\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nContent-ID: 2\r\nCache-Control: no-cache\r\n"
    b"etag: W/\"datetime'2026-12-03T09%3A23%3A46.9812116Z'\"\r\nDataServiceVersion: 1.0;\r\n\r\n\r\n"
    b"--changesetresponse_1ea7b9f7-ec83-4dbf-b31b-65e5c2ee1b79\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nContent-ID: 3\r\nCache-Control: no-cache\r\nDataServiceVersion: 1.0;\r\n\r\n\r\n"
    b"--changesetresponse_1ea7b9f7-ec83-4dbf-b31b-65e5c2ee1b79--\r\n"
    b"--batchresponse_7ab1553a-7dd6-4e7e-9b2d-c3a1bd86c6a9--\r\n"
)
FAILURE = (
    b"--batchresponse_e69b1c6c-50e5-4a04-b0d4-a6b6a4d1fbee\r\n"
    b"Content-Type: multipart/mixed; boundary=changesetresponse_a6253244-7e21-42a8-a149-479ee9e94a25\r\n\r\n"
    b"--changesetresponse_a6253244-7e21-42a8-a149-479ee9e94a25\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 409 Conflict\r\nContent-ID: 1\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n"
    b"DataServiceVersion: 3.0;\r\n"
    b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n"
    b'{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US",'
    b'"value":"0:The specified entity already exists.\\nRequestId:5a1b\\nTime:2026-12-03T09:23:46Z"}}}\r\n'
    b"--changesetresponse_a6253244-7e21-42a8-a149-479ee9e94a25--\r\n"
    b"--batchresponse_e69b1c6c-50e5-4a04-b0d4-a6b6a4d1fbee--\r\n"
)


def test_a_documented_success_gives_each_operation_its_status_and_etag() -> None:
    parts = parse_batch_response(SUCCESS)
    assert [p.status for p in parts] == [201, 204, 204]
    assert parts[0].headers["etag"] == "W/\"datetime'2026-12-03T09%3A23%3A46.9812103Z'\""
    assert parts[1].headers["etag"].endswith("6Z'\"")  # header names in any case
    assert "etag" not in parts[2].headers  # a delete has none
    assert parts[0].body.startswith(b'{"odata.metadata"')


def test_a_documented_failure_names_the_failed_operation_and_its_code() -> None:
    parts = parse_batch_response(FAILURE)
    assert [p.status for p in parts] == [409]
    assert parts[0].error_code == "EntityAlreadyExists"
    assert isinstance(batch_error(parts[0].status, parts[0].error_code), Conflict)


def test_each_failure_maps_to_one_branch() -> None:
    assert isinstance(batch_error(412, "UpdateConditionNotSatisfied"), EtagMismatch)
    assert isinstance(batch_error(404, "ResourceNotFound"), EtagMismatch)
    assert isinstance(batch_error(503, "ServerBusy"), TransientError)
    assert isinstance(batch_error(429, ""), TransientError)
    assert isinstance(batch_error(400, "PropertyValueTooLarge"), PermanentError)
    assert isinstance(batch_error(413, "RequestBodyTooLarge"), PermanentError)
    assert isinstance(batch_error(409, "TableBeingDeleted"), PermanentError)
