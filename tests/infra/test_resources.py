"""What the Bicep must guarantee: tags, least privilege per path, no keys, the Event Grid wiring."""

from __future__ import annotations

import re

from devstack.acs.config import DEPLOYED_MAX_EVENTS_PER_BATCH
from tests.infra.bicep import MAIN, Resource, declared_resources, parameters, parse

RESOURCES = declared_resources()

# Resource types that carry no tags in ARM (extension and child resources, budgets).
UNTAGGABLE = frozenset(
    {
        "Microsoft.Authorization/roleAssignments",
        "Microsoft.Authorization/roleDefinitions",
        "Microsoft.Insights/diagnosticSettings",
        "Microsoft.Consumption/budgets",
        "Microsoft.Web/sites/config",
        "Microsoft.Storage/storageAccounts/managementPolicies",
        "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
        "Microsoft.Storage/storageAccounts/blobServices",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Storage/storageAccounts/queueServices",
        "Microsoft.Storage/storageAccounts/queueServices/queues",
        "Microsoft.Storage/storageAccounts/tableServices",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
        "Microsoft.EventGrid/systemTopics/eventSubscriptions",
        "Microsoft.EventGrid/topics/eventSubscriptions",
        "Microsoft.Communication/emailServices/domains/senderUsernames",
    }
)

# Built-in role definition ids (learn.microsoft.com "Azure built-in roles"), by name.
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "09976791-48a7-449e-bb21-39d1a415f350": "Communication and Email Service Owner",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
ROLE_MODULES = ("roles.bicep", "eventgrid.bicep", "feed.bicep", "feed-subscription.bicep")
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
EVENT_TYPES = {
    "Microsoft.Communication.SMSDeliveryReportReceived",
    "Microsoft.Communication.SMSReceived",
    "Microsoft.Communication.EmailDeliveryReportReceived",
    "Microsoft.Communication.EmailEngagementTrackingReportReceived",
    "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
    "Microsoft.Communication.AdvancedMessageReceived",
}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _of_type(type_: str) -> list[Resource]:
    return [resource for resource in RESOURCES if resource.type == type_]


def _one(type_: str) -> Resource:
    (resource,) = _of_type(type_)
    return resource


def test_every_taggable_resource_is_tagged() -> None:
    """Every resource that can carry tags gets the tags built from owner, costCenter and environment."""
    untagged = [f"{r.file.name}:{r.symbol}" for r in RESOURCES if r.type not in UNTAGGABLE and "tags" not in r.body]
    assert untagged == []


def test_tags_come_from_parameters() -> None:
    """The tag object is built from the owner, costCenter and environment parameters."""
    main = parse(MAIN)
    assert {"owner", "costCenter", "environment"} <= set(parameters(MAIN))
    assert main["variables"]["tags"]["value"] == {
        "owner": "owner",
        "costCenter": "costCenter",
        "environment": "environment",
        "application": "contact-messages",
    }


def test_role_definition_ids_are_the_known_built_ins() -> None:
    """Every role GUID in the modules that assign roles is a known built-in, and none is broad."""
    for module in ROLE_MODULES:
        text = (MAIN.parent / "modules" / module).read_text()
        for guid in set(GUID.findall(text)):
            assert guid in BUILT_IN_ROLES, f"{module}: unknown role id {guid}"
            assert guid not in BROAD_ROLES, f"{module}: broad role {BROAD_ROLES[guid]}"


def test_no_broad_role_is_assigned_anywhere() -> None:
    """No Owner, Contributor or User Access Administrator assignment exists in the templates."""
    text = "\n".join(path.read_text() for path in MAIN.parent.rglob("*.bicep"))
    assert not set(GUID.findall(text)) & set(BROAD_ROLES)


def test_custom_acs_role_has_only_the_send_actions() -> None:
    """The custom ACS role holds the three actions ACS checks for Entra-authenticated sends, nothing else."""
    role = _one("Microsoft.Authorization/roleDefinitions")
    (permissions,) = role.properties["permissions"]
    assert sorted(permissions["actions"]) == [
        "Microsoft.Communication/CommunicationServices/Read",
        "Microsoft.Communication/CommunicationServices/Write",
        "Microsoft.Communication/EmailServices/write",
    ]
    assert permissions["dataActions"] == []
    assert role.properties["assignableScopes"]


def test_function_identity_roles_are_scoped_per_path() -> None:
    """Storage roles on the account, Key Vault on the vault, telemetry on the component, ACS on ACS."""
    scopes = {
        resource.symbol: resource.body["scope"]
        for resource in _of_type("Microsoft.Authorization/roleAssignments")
        if resource.file.name == "roles.bicep"
    }
    assert scopes == {
        "blobOwner": "storage",
        "queueContributor": "storage",
        "tableContributor": "storage",
        "secretsUser": "vault",
        "metricsPublisher": "appInsights",
        "acsSender": "acs",
        "operatorTables": "storage",
        "operatorQueues": "storage",
    }


def test_event_grid_identity_may_write_only_the_dead_letter_container() -> None:
    """The system topic's identity gets Storage Blob Data Contributor on the dead-letter container only."""
    (assignment,) = [r for r in _of_type("Microsoft.Authorization/roleAssignments") if r.file.name == "eventgrid.bicep"]
    assert assignment.body["scope"] == "deadLetterContainer"
    assert "storageBlobDataContributor" in str(assignment.properties["roleDefinitionId"])


def test_event_subscription_targets_record_event_with_filter_retry_and_dead_letter() -> None:
    """AzureFunction endpoint record_event, the six event types, a retry policy, identity dead-lettering."""
    subscription = _one("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    props = subscription.properties
    assert props["destination"]["endpointType"] == "AzureFunction"
    assert props["destination"]["properties"]["resourceId"].endswith("/functions/record_event")
    assert set(props["filter"]["includedEventTypes"]) == EVENT_TYPES
    assert set(props["retryPolicy"]) == {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"}
    destination = props["destination"]["properties"]
    assert (destination["maxEventsPerBatch"], destination["preferredBatchSizeInKilobytes"]) == ("maxEventsPerBatch", 64)
    dead_letter = props["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"]["type"] == "SystemAssigned"
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    topic = _one("Microsoft.EventGrid/systemTopics")
    assert topic.body["identity"]["type"] == "SystemAssigned"
    assert topic.properties["topicType"] == "Microsoft.Communication.CommunicationServices"


def test_events_are_delivered_in_the_event_grid_schema() -> None:
    """The subscription delivers in the Event Grid schema, which every azure-functions the Python worker may
    load ahead of the app's own reads in full; an older bundled library turns a CloudEvents delivery into
    an EventGridEvent without type, source or time (shown with 1.15.0 by tests/devstack/host/
    test_worker_packages.py), so the app could not tell one report from another."""
    subscription = _one("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert subscription.properties["eventDeliverySchema"] == "EventGridSchema"


def test_event_batch_size_is_a_parameter_within_event_grids_limits() -> None:
    """One event per delivery unless the deployment says otherwise (Event Grid allows 1 to 5000)."""
    batch = parameters(MAIN)["eventMaxEventsPerBatch"]
    assert batch["default"] == DEPLOYED_MAX_EVENTS_PER_BATCH == 1  # the local stack delivers the same way
    limits = {d["type"]: d["argument"] for d in batch["decorators"]}
    assert (limits["min_value"], limits["max_value"]) == (1, 5000)


def test_no_keys_anywhere() -> None:
    """Shared keys off on storage, local auth off on ACS and Application Insights, no listKeys() calls."""
    storage = _one("Microsoft.Storage/storageAccounts").properties
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    assert _one("Microsoft.Communication/communicationServices").properties["disableLocalAuth"] == "disableLocalAuth"
    assert parameters(MAIN)["acsDisableLocalAuth"]["default"] is True
    assert _one("Microsoft.Insights/components").properties["DisableLocalAuth"] is True
    assert _one("Microsoft.EventGrid/topics").properties["disableLocalAuth"] is True
    vault = _one("Microsoft.KeyVault/vaults").properties
    assert vault["enableRbacAuthorization"] is True
    for path in MAIN.parent.rglob("*.bicep"):
        assert "listKeys" not in path.read_text(), path.name


def test_function_app_is_flex_consumption_python_311_with_system_identity() -> None:
    """FC1 plan, Python 3.11 runtime, system-assigned identity, identity-authenticated deployment container."""
    plan = _one("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = _one("Microsoft.Web/sites")
    assert site.body["identity"] == {"type": "SystemAssigned"}
    config = site.properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"] == {"type": "SystemAssignedIdentity"}


def test_storage_has_queues_containers_and_tables() -> None:
    """Both lanes' queues and their poison queues, the deployment, dead-letter and payload containers, and the
    tables exist."""
    queues = {r.body["name"] for r in _of_type("Microsoft.Storage/storageAccounts/queueServices/queues")}
    lanes = ("sendQueueName", "${sendQueueName}-priority")
    assert queues == {lanes[0], "${sendQueueName}-poison", lanes[1], "${sendQueueName}-priority-poison"}
    assert parameters(MAIN)["sendQueueName"]["default"] == "outbound"
    containers = {
        (r.file.name, r.body["name"]) for r in _of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
    }
    assert containers == {
        ("storage.bicep", "deploymentContainerName"),
        ("storage.bicep", "deadLetterContainerName"),
        ("storage.bicep", "payloadContainerName"),
        ("feed.bicep", "deadLetterContainerName"),  # the feed's own, created with its topic
    }
    assert _of_type("Microsoft.Storage/storageAccounts/tableServices/tables")


def test_diagnostics_reach_log_analytics_for_acs_and_storage() -> None:
    """ACS, storage and its services, and both Event Grid topics send diagnostics to the workspace."""
    scopes = {(r.file.name, r.body["scope"]) for r in _of_type("Microsoft.Insights/diagnosticSettings")}
    assert {("eventgrid.bicep", "systemTopic"), ("feed.bicep", "topic")} <= scopes
    assert {"acs", "account", "blobService", "queueService", "tableService"} <= {scope for _, scope in scopes}


def test_budget_alerts_the_operator() -> None:
    """A monthly budget notifies the alert email on actual and forecast spend."""
    budget = _one("Microsoft.Consumption/budgets").properties
    assert budget["timeGrain"] == "Monthly"
    kinds = {notification["thresholdType"] for notification in budget["notifications"].values()}
    assert kinds == {"Actual", "Forecasted"}


def test_tables_created_are_the_tables_the_app_uses() -> None:
    """tableSuffixes defaults to exactly the tables of shared/schema.py, so none is missing or stray."""
    from shared.schema import TableNames

    assert sorted(parameters(MAIN)["tableSuffixes"]["default"]) == sorted(TableNames("").all())


def test_dead_letter_blobs_are_purged() -> None:
    """Dead-letter blobs hold raw addresses (ACS) or producers' metadata (feed): a lifecycle rule deletes them."""
    (policy,) = _of_type("Microsoft.Storage/storageAccounts/managementPolicies")
    (rule,) = policy.properties["policy"]["rules"]
    assert rule["definition"]["filters"]["prefixMatch"] == [
        "${deadLetterContainerName}/",
        "${feedDeadLetterContainerName}/",
    ]
    assert "delete" in rule["definition"]["actions"]["baseBlob"]
