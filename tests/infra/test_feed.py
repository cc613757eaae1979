"""The status feed in Azure (issue 17): an Entra-only CloudEvents topic, one role for the app on that topic
only, settings and alerts only when the feed is on, and an example subscription on final statuses."""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import Status
from tests.infra.bicep import INFRA, MAIN, Resource, body, declared_resources, parameters, parse
from tests.infra.test_deployment_rules import evaluate

FEED = INFRA / "modules" / "feed.bicep"
SUBSCRIPTION = INFRA / "modules" / "feed-subscription.bicep"
EVENT_GRID_DATA_SENDER = "d5a91429-5739-47e2-a06b-3470a27159e7"
# Statuses a message moves on from while its send is under way; every other one ends it.
IN_FLIGHT = {Status.ACCEPTED, Status.SENDING, Status.SENT}
QUEUE_ID = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ServiceBus/namespaces/n/queues/q"


def _declared(path: Any, symbol: str) -> Resource:
    (resource,) = [r for r in declared_resources() if r.file == path and r.symbol == symbol]
    return resource


def _main_config(symbol: str) -> dict[str, Any]:
    config: dict[str, Any] = parse(MAIN)["modules"][symbol]["config"]
    return config


def _accessor(value: Any) -> str:
    """`a.b.c` as pycep renders a chain of property accessors, back to text."""
    if isinstance(value, str):
        return value
    operands = value["operator"]["operands"]
    return f"{operands['operand_1']}.{_accessor(operands['operand_2'])}"


def test_topic_is_entra_only_and_takes_cloud_events() -> None:
    """Local auth off, CloudEvents 1.0 in, a system identity (dead-lettering), the public network as storage."""
    topic = _declared(FEED, "topic")
    assert topic.type == "Microsoft.EventGrid/topics"
    assert topic.properties["disableLocalAuth"] is True
    assert topic.properties["inputSchema"] == "CloudEventSchemaV1_0"
    assert topic.body["identity"] == {"type": "SystemAssigned"}
    storage = next(r for r in declared_resources() if r.type == "Microsoft.Storage/storageAccounts")
    assert topic.properties["publicNetworkAccess"] == storage.properties["publicNetworkAccess"] == "Enabled"


def test_app_identity_may_only_send_to_the_feed_topic() -> None:
    """The function app's identity gets "EventGrid Data Sender", scoped to the topic and nothing wider."""
    (assignment,) = [
        r for r in declared_resources() if r.file == FEED and r.type == "Microsoft.Authorization/roleAssignments"
    ]
    assert assignment.body["scope"] == "topic"
    assert assignment.properties["principalId"] == "publisherPrincipalId"
    variables = parse(FEED)["variables"]
    assert variables["eventGridDataSender"]["value"] == EVENT_GRID_DATA_SENDER
    assert "eventGridDataSender" in str(assignment.properties["roleDefinitionId"])
    params = body(_main_config("feed"))["params"]
    assert _accessor(params["publisherPrincipalId"]) == "functionApp.outputs.principalId"


def test_topic_identity_may_only_write_the_feed_dead_letter_container() -> None:
    """The topic's own identity gets Storage Blob Data Contributor on the feed's dead-letter container only."""
    (assignment,) = [
        r
        for r in declared_resources()
        if r.file == SUBSCRIPTION and r.type == "Microsoft.Authorization/roleAssignments"
    ]
    assert assignment.body["scope"] == "deadLetterContainer"
    assert "storageBlobDataContributor" in str(assignment.properties["roleDefinitionId"])
    params = body(_main_config("feedSubscription"))["params"]
    assert _accessor(params["deadLetterContainerName"]) == "feed.outputs.deadLetterContainerName"
    variables = parse(MAIN)["variables"]
    feed_container, acs_container = (
        variables[name]["value"] for name in ("feedDeadLetterContainerName", "deadLetterContainerName")
    )
    # Feed dead letters must not mix with the ACS events the runbook replays into record_event.
    assert feed_container != acs_container


def _deployed(feed_enabled: bool, webhook: str, queue: str) -> dict[str, Any]:
    """What main.bicep deploys and sets for these parameters (conditions evaluated, outputs left as names)."""
    env: dict[str, Any] = {
        "feedEnabled": feed_enabled,
        "feedSubscriptionWebhookUrl": webhook,
        "feedSubscriptionServiceBusQueueId": queue,
    }
    main = parse(MAIN)
    env["feedSubscriptionEnabled"] = evaluate(main["variables"]["feedSubscriptionEnabled"]["value"], env)
    endpoint = body(_main_config("appSettings"))["params"]["feedTopicEndpoint"]
    operands = endpoint["operator"]["operands"]
    branch = "true_value" if evaluate(operands["condition"], env) else "false_value"
    subscription_env = {"webhookUrl": webhook, "serviceBusQueueId": queue}
    resources = parse(SUBSCRIPTION)["resources"]
    return {
        "feed": evaluate(_main_config("feed")["condition"], env),
        "subscription": evaluate(_main_config("feedSubscription")["condition"], env),
        "endpoint": _accessor(operands[branch]) if operands[branch] else "",
        "webhook": bool(evaluate(resources["toWebhook"]["config"]["condition"], subscription_env)),
        "queue": bool(evaluate(resources["toQueue"]["config"]["condition"], subscription_env)),
    }


@pytest.mark.parametrize("feed_enabled", [False, True])
@pytest.mark.parametrize("webhook", ["", "https://crm.example.com/hooks/status"])
@pytest.mark.parametrize("queue", ["", QUEUE_ID])
def test_feed_parameters_decide_what_is_deployed(feed_enabled: bool, webhook: str, queue: str) -> None:
    """Off: no topic, no subscription, no endpoint setting. On: the topic and the endpoint; a subscription per
    destination given."""
    deployed = _deployed(feed_enabled, webhook, queue)
    assert deployed["feed"] is feed_enabled
    assert deployed["endpoint"] == ("feed.outputs.endpoint" if feed_enabled else "")
    assert deployed["subscription"] is (feed_enabled and bool(webhook or queue))
    assert (deployed["webhook"], deployed["queue"]) == (bool(webhook), bool(queue))


def test_feed_is_on_by_default_and_the_webhook_url_is_secure() -> None:
    """The feed is least-privilege, so it is on unless turned off; a webhook URL may carry a key."""
    params = parameters(MAIN)
    assert params["feedEnabled"]["default"] is True
    assert params["feedSubscriptionWebhookUrl"]["default"] == ""
    assert params["feedSubscriptionServiceBusQueueId"]["default"] == ""
    assert any(d["type"] == "secure" for d in params["feedSubscriptionWebhookUrl"]["decorators"])
    assert any(d["type"] == "secure" for d in parameters(SUBSCRIPTION)["webhookUrl"]["decorators"])


def _subscriptions() -> list[Resource]:
    found = [r for r in declared_resources() if r.type == "Microsoft.EventGrid/topics/eventSubscriptions"]
    assert {r.symbol for r in found} == {"toWebhook", "toQueue"}
    return found


def test_subscription_filters_on_the_event_type_and_final_statuses() -> None:
    """includedEventTypes is the feed's one type; data.status StringIn every status that ends a send."""
    final = sorted(str(status) for status in set(Status) - IN_FLIGHT)
    assert parse(SUBSCRIPTION)["variables"]["finalStatuses"]["value"] == [
        "Delivered",
        "Read",
        "Failed",
        "Expired",
        "Suppressed",
        "DeadLettered",
        "Rejected",
        "Unknown",
    ]
    assert sorted(parse(SUBSCRIPTION)["variables"]["finalStatuses"]["value"]) == final
    for subscription in _subscriptions():
        filter_ = subscription.properties["filter"]
        assert filter_["includedEventTypes"] == ["ContactMessages.MessageStatusChanged"]
        (advanced,) = filter_["advancedFilters"]
        assert advanced == {"operatorType": "StringIn", "key": "data.status", "values": "finalStatuses"}


def test_subscription_delivers_cloud_events_with_retries_and_dead_letters() -> None:
    """CloudEvents delivery, a retry policy, dead-lettering with the topic's identity to the feed container."""
    for subscription in _subscriptions():
        props = subscription.properties
        assert props["eventDeliverySchema"] == "CloudEventSchemaV1_0"
        assert set(props["retryPolicy"]) == {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"}
        dead_letter = props["deadLetterWithResourceIdentity"]
        assert dead_letter["identity"] == {"type": "SystemAssigned"}
        assert dead_letter["deadLetterDestination"]["properties"]["blobContainerName"] == "deadLetterContainerName"


def test_webhook_and_queue_destinations() -> None:
    """The webhook gets the URL; the queue is reached with the topic's identity (no keys, no connection string)."""
    by_symbol = {r.symbol: r.properties for r in _subscriptions()}
    webhook = by_symbol["toWebhook"]["destination"]
    assert webhook["endpointType"] == "WebHook"
    assert webhook["properties"]["endpointUrl"] == "webhookUrl"
    queue = by_symbol["toQueue"]
    assert "destination" not in queue
    assert queue["deliveryWithResourceIdentity"]["identity"] == {"type": "SystemAssigned"}
    assert queue["deliveryWithResourceIdentity"]["destination"] == {
        "endpointType": "ServiceBusQueue",
        "properties": {"resourceId": "serviceBusQueueId"},
    }


def test_feed_alerts_exist_only_with_the_feed() -> None:
    """The two feed alerts are added to the log alerts only when feedEnabled is true."""
    alerts = parse(INFRA / "modules" / "alerts.bicep")
    names = [alert["name"] for alert in alerts["variables"]["feedAlerts"]["value"]]
    assert names == ["feed-publish-failed", "feed-outbox-age"]
    text = (INFRA / "modules" / "alerts.bicep").read_text()
    assert "[for alert in concat(logAlerts, feedEnabled ? feedAlerts : [])" in text
    assert _accessor(body(_main_config("alerts"))["params"]["feedEnabled"]) == "feedEnabled"
