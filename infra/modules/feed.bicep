// The status feed (issue 17, docs/status-feed.md): an Event Grid custom topic the app publishes each
// ledger transition to, as a CloudEvents 1.0 event (ContactMessages.MessageStatusChanged), and the
// one role the app needs on it. Subscribers are not part of the app; feed-subscription.bicep is an
// example of one.
//
// Entra ID only: local auth (topic keys, SAS tokens) is disabled, so the app publishes with its
// managed identity (shared/adapters/eventgrid.py, token scope https://eventgrid.azure.net/.default)
// and FEED_TOPIC_KEY is never set in Azure. The identity gets "EventGrid Data Sender" on this topic
// only: the data action Microsoft.EventGrid/events/send/action, nothing on any other topic.
//
// The topic has a system-assigned identity of its own, which Event Grid uses to dead-letter (and to
// deliver to Service Bus) for the subscriptions that ask for it. It gets no role here: each
// subscription grants it what that subscription needs (feed-subscription.bicep).

param location string
param tags object
param topicName string
@description('Principal id of the function app\'s system-assigned identity (the publisher).')
param publisherPrincipalId string
@description('Storage account and container that hold the feed subscriptions\' dead letters (created here).')
param storageAccountName string
param deadLetterContainerName string
param workspaceId string

// EventGrid Data Sender, "Allows send access to event grid events."
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles (Integration).
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

// Apart from the ACS dead-letter container: those blobs are raw ACS events that the runbook replays
// into record_event, and a feed event there would be replayed into the wrong function. The lifecycle
// rule in storage.bicep purges both on the same clock.
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: topicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // checkov:skip=CKV_AZURE_193: The Flex Consumption app has no VNet integration in this design (as storage.bicep), so it publishes over the public endpoint; local auth is off and only the app's identity may send.
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    inboundIpRules: []
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, publisherPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    description: 'Publish the status feed (FEED_TOPIC_ENDPOINT) with the managed identity; this topic only.'
  }
}

// Publish failures (PublishFailures), delivery failures per subscription (DeliveryFailures) and the
// topic's metrics (published, matched, delivered, dead-lettered and dropped events).
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: topic
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output topicId string = topic.id
output topicName string = topic.name
output endpoint string = topic.properties.endpoint
output principalId string = topic.identity.principalId
output deadLetterContainerName string = deadLetterContainer.name
