// Event Grid system topic on the ACS resource and the subscription that delivers the six event
// types the app records to the function `record_event` (AzureFunction endpoint: Event Grid calls
// the function with its system key, no webhook URL or key in the template).
// Undeliverable events are dead-lettered to a blob container with the topic's own identity, because
// the storage account accepts no shared key. That identity may write to that one container only.

param tags object
param systemTopicName string
param acsName string
param storageAccountName string
param deadLetterContainerName string
param functionAppName string
param subscriptionEnabled bool
param maxDeliveryAttempts int
param eventTimeToLiveMinutes int
@description('Most events per delivery; a delivery still ends at about 64 KB (preferredBatchSizeInKilobytes).')
param maxEventsPerBatch int
param workspaceId string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource acs 'Microsoft.Communication/communicationServices@2025-09-01' existing = {
  name: acsName
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

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: acs.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    description: 'Event Grid writes undeliverable ACS events to the dead-letter container (and nowhere else).'
  }
}

resource recordEvent 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscriptionEnabled) {
  parent: systemTopic
  name: 'record-event'
  dependsOn: [
    deadLetterWriter
  ]
  properties: {
    // Not CloudEvents: on Python <= 3.12 the worker may load its own older azure-functions ahead of the
    // app's (PYTHON_ISOLATE_WORKER_DEPENDENCIES is off by default), and older copies drop a CloudEvent's
    // type, source and time in the binding. See docs/deployment.md, "Which azure-functions runs".
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionApp.id}/functions/record_event'
        maxEventsPerBatch: maxEventsPerBatch
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Communication.SMSDeliveryReportReceived'
        'Microsoft.Communication.SMSReceived'
        'Microsoft.Communication.EmailDeliveryReportReceived'
        'Microsoft.Communication.EmailEngagementTrackingReportReceived'
        'Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated'
        'Microsoft.Communication.AdvancedMessageReceived'
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

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: systemTopic
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

output systemTopicId string = systemTopic.id
output systemTopicName string = systemTopic.name
