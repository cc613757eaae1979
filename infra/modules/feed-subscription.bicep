// An example subscriber of the status feed: the final status of each message (the ledger's end
// states), to a webhook, a Service Bus queue, or both. A real subscriber usually lives in its own
// deployment; this shows what one needs (docs/status-feed.md, "Azure").
//
// - Filter: the event type, and data.status in the final statuses (an advanced filter, StringIn).
//   Event Grid compares strings case-insensitively.
// - Delivery in the CloudEvents 1.0 schema, the topic's input schema. A webhook must answer the
//   CloudEvents validation handshake (an OPTIONS request with WebHook-Request-Origin) when the
//   subscription is created, or the deployment fails.
// - Retries: maxDeliveryAttempts within eventTimeToLiveInMinutes, then dead-lettered to a blob
//   container with the topic's own identity, which may write to that one container only.
// - Service Bus: delivered with the topic's identity, which needs "Azure Service Bus Data Sender" on
//   the queue. The queue is the subscriber's and usually elsewhere, so that grant is a step of its
//   own (docs/deployment.md), not a role assignment here.

param topicName string
@secure()
@description('HTTPS endpoint of a webhook subscriber (it may hold a key in its query). Empty: no webhook subscription.')
param webhookUrl string
@description('Resource id of a Service Bus queue (not session-enabled). Empty: no queue subscription.')
param serviceBusQueueId string
param storageAccountName string
param deadLetterContainerName string
param maxDeliveryAttempts int
param eventTimeToLiveMinutes int

// shared/models.py Status without Accepted, Sending and Sent: each ends the message's send (Delivered
// may still become Read, and an operator may replay a DeadLettered message). tests/infra keeps them equal.
var finalStatuses = [
  'Delivered'
  'Read'
  'Failed'
  'Expired'
  'Suppressed'
  'DeadLettered'
  'Rejected'
  'Unknown'
]
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: topicName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, topic.id, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    description: 'Event Grid writes undeliverable status-feed events to the feed dead-letter container (and nowhere else).'
  }
}

resource toWebhook 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (!empty(webhookUrl)) {
  parent: topic
  name: 'final-status-webhook'
  dependsOn: [
    deadLetterWriter
  ]
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: webhookUrl
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'ContactMessages.MessageStatusChanged'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.status'
          values: finalStatuses
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

resource toQueue 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = if (!empty(serviceBusQueueId)) {
  parent: topic
  name: 'final-status-queue'
  dependsOn: [
    deadLetterWriter
  ]
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'ServiceBusQueue'
        properties: {
          resourceId: serviceBusQueueId
        }
      }
    }
    filter: {
      includedEventTypes: [
        'ContactMessages.MessageStatusChanged'
      ]
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.status'
          values: finalStatuses
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}
