"""One managed identity for every client in Azure, the operator's sign-in for the CLI, and storage endpoints
taken from the host's own settings (any cloud) rather than a hard-coded core.windows.net."""

from __future__ import annotations

from typing import Any

import pytest
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

from devstack.azurite import Azurite
from shared.adapters.acs import parse_acs_connection
from shared.adapters.storage import StorageClients
from shared.errors import ConfigurationError
from shared.runtime import app_credential, build_services, needs_credential
from shared.settings import Settings, load_settings

GOV = {
    "AzureWebJobsStorage__accountName": "cmstore",
    "AzureWebJobsStorage__queueServiceUri": "https://cmstore.queue.core.usgovcloudapi.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://cmstore.table.core.usgovcloudapi.net/",
    "AzureWebJobsStorage__blobServiceUri": "https://cmstore.blob.core.usgovcloudapi.net/",
    "ACS_ENDPOINT": "https://cm-acs.usgov.communication.azure.us",
    "ACS_RESOURCE_IDS": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Communication/communicationServices/a",
    "CONSENT_HASH_KEY": "k",
    "RECONCILE_SCHEDULE": "0 */5 * * * *",
    "RETENTION_SCHEDULE": "0 0 3 * * *",
    "SEND_QUEUE": "outbound",
}


def _settings(**changes: str) -> Settings:
    env = {k: v for k, v in {**GOV, **changes}.items() if v}
    return load_settings(env)


async def test_every_client_shares_the_one_credential_and_the_configured_endpoints() -> None:
    """Tables, queues, blobs and ACS get the same credential object; storage URLs are the service URIs."""
    settings = _settings()
    credential = app_credential(settings)
    storage = StorageClients(settings, credential)
    try:
        assert [storage.tables.url, storage.queues.url.rstrip("/"), storage.blobs.url.rstrip("/")] == [
            "https://cmstore.table.core.usgovcloudapi.net",
            "https://cmstore.queue.core.usgovcloudapi.net",
            "https://cmstore.blob.core.usgovcloudapi.net",
        ]
        acs = parse_acs_connection(None, settings.acs_endpoint, credential)
        shared_by = (storage.tables.credential, storage.queues.credential, storage.blobs.credential, acs.credential)
        assert {id(c) for c in shared_by} == {id(credential)}
        assert isinstance(credential, ManagedIdentityCredential)
    finally:
        await storage.close()
        await credential.close()


async def test_without_service_uris_the_account_name_gives_public_cloud_endpoints() -> None:
    """Only the account name set: endpoints are derived as before."""
    settings = _settings(
        AzureWebJobsStorage__queueServiceUri="",
        AzureWebJobsStorage__tableServiceUri="",
        AzureWebJobsStorage__blobServiceUri="",
    )
    credential = app_credential(settings)
    storage = StorageClients(settings, credential)
    try:
        assert storage.tables.url == "https://cmstore.table.core.windows.net"
    finally:
        await storage.close()
        await credential.close()


def test_three_service_uris_are_enough_without_an_account_name() -> None:
    """The host accepts the service URIs alone; so do the settings."""
    assert _settings(AzureWebJobsStorage__accountName="").storage_service_uris["queue"].endswith("usgovcloudapi.net")


async def test_a_user_assigned_identity_is_chosen_by_azure_client_id() -> None:
    """AZURE_CLIENT_ID selects the user-assigned identity; without it the system-assigned one is used."""
    client_id = "11111111-2222-3333-4444-555555555555"
    chosen = app_credential(_settings(AZURE_CLIENT_ID=client_id))
    system = app_credential(_settings())
    try:
        assert _client_id(chosen) == client_id and _client_id(system) is None
    finally:
        await chosen.close()
        await system.close()


def _client_id(credential: Any) -> Any:
    """The identity the credential asks the platform for (private azure-identity state: no public getter)."""
    inner = credential._credential  # the IMDS or App Service flavour, chosen from the environment
    return inner._client._identity_config.get("client_id")


def test_acs_by_endpoint_without_a_credential_is_a_configuration_error() -> None:
    """No silent fallback to DefaultAzureCredential inside the adapter."""
    with pytest.raises(ConfigurationError):
        parse_acs_connection(None, "https://x.communication.azure.com", None)


async def test_connection_strings_build_no_credential(azurite: Azurite) -> None:
    """The local stack (connection strings) never asks for a credential."""
    acs = "endpoint=http://127.0.0.1:1/;accesskey=a2V5"
    env = {**GOV, "AzureWebJobsStorage": azurite.connection_string, "ACS_CONNECTION_STRING": acs}
    settings = load_settings(env)
    assert not needs_credential(settings)

    def refuse(_: Settings) -> Any:
        raise AssertionError("no credential is needed")

    services = await build_services(settings, credential_factory=refuse)
    await services.close()


def test_the_cli_uses_the_operators_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds its services with DefaultAzureCredential, never the app's managed identity."""
    from contactmsg import context

    made: list[Any] = []

    async def capture(settings: Settings, **options: Any) -> Any:
        made.append(options["credential_factory"](settings))
        await made[-1].close()
        raise ConfigurationError("stop here")

    monkeypatch.setattr(context, "build_services", capture)
    monkeypatch.setattr(context, "settings_env", lambda: dict(GOV))
    with pytest.raises(context.typer.Exit):
        context.run(lambda _: _never())
    assert [type(c) for c in made] == [DefaultAzureCredential]


async def _never() -> None:
    raise AssertionError("not reached")


def _transports(client: Any, depth: int = 0, seen: set[int] | None = None) -> list[Any]:
    """Every aiohttp transport reachable from an SDK client's attributes, except the credential's own (it
    fetches a token about once an hour, and it is the identity library's to build)."""
    from azure.core.pipeline.transport import AioHttpTransport

    seen = set() if seen is None else seen
    if id(client) in seen or depth > 8:
        return []
    seen.add(id(client))
    if isinstance(client, AioHttpTransport):
        return [client]
    values = [v for k, v in vars(client).items() if "credential" not in k and hasattr(v, "__dict__")]
    return [t for value in values for t in _transports(value, depth + 1, seen)]


async def test_no_sdk_client_looks_up_proxy_settings_per_request() -> None:
    """Storage, the three ACS clients and the feed's publisher are built with `use_env_settings=False`:
    with azure-core's default, aiohttp reads ~/.netrc and the proxy variables on a thread per request."""
    from shared.adapters.acs import AcsSenders
    from shared.adapters.eventgrid import FeedPublisher
    from shared.settings import AcsTimeouts

    settings = _settings()
    credential = app_credential(settings)
    storage = StorageClients(settings, credential)
    senders = AcsSenders(parse_acs_connection(None, settings.acs_endpoint, credential), AcsTimeouts())
    publisher = FeedPublisher("https://topic.westeurope-1.eventgrid.azure.net/api/events", credential)
    clients = [
        storage.tables,
        storage.queues,
        storage.blobs,
        senders._sms_client(),
        senders._email_client(),
        senders._messages_client(),
        publisher,
    ]
    try:
        found = [_transports(client) for client in clients]
        assert all(found), "a client's transport was not found"
        assert {t._use_env_settings for transports in found for t in transports} == {False}
    finally:
        await storage.close()
        await publisher.close()
        await credential.close()
