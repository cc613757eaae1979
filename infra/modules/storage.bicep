// One storage account for host storage and the app's data: the Flex deployment container, the send
// queue, its priority lane ('<name>-priority') and their poison queues, the tables, and the Event Grid
// dead-letter container.
// Shared-key access is disabled, so every caller (host, app, Event Grid) uses Microsoft Entra ID.
// The queues are created here because the host never creates a trigger queue, and the reconcile
// timer drains the poison queues (no trigger reads it: see shared/services/deadletter.py).

param location string
param tags object
param name string
@description('Geo- and zone-redundant unless the caller chooses otherwise (dev uses LRS).')
param skuName string = 'Standard_GZRS'
param deploymentContainerName string
param deadLetterContainerName string
@description('Container of the status feed\'s dead letters (created by feed.bicep when the feed is on); purged like the ACS dead letters.')
param feedDeadLetterContainerName string
@description('Blob container for send requests too large for a queue message (claim-check).')
param payloadContainerName string
param sendQueueName string
param tableNames array
@description('Days to keep Event Grid dead-letter blobs. They hold raw ACS events (phone numbers, email addresses), so they are purged like other recipient data.')
param deadLetterRetentionDays int = 30
param workspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // checkov:skip=CKV_AZURE_35: The Flex Consumption app runs without VNet integration in this design, so the default network action must allow Azure; access is Entra-only (shared key off) and scoped by RBAC per path.
    // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public endpoint needed without a VNet; no anonymous or key access is possible (allowBlobPublicAccess false, allowSharedKeyAccess false).
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource payloadContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: payloadContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Dead-lettered ACS events contain recipient addresses, and dead-lettered feed events the producers'
// metadata: delete both on the recipient-data clock. A prefix of a container that does not exist
// (the feed turned off) matches nothing.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'purge-eventgrid-dead-letters'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${deadLetterContainerName}/'
                '${feedDeadLetterContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: deadLetterRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource sendQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: sendQueueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${sendQueueName}-poison'
}

// The high-priority lane (one-time codes, alerts): its own queue and trigger, so it never waits behind
// a normal backlog (shared/models.py Priority).
resource priorityQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${sendQueueName}-priority'
}

resource priorityPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${sendQueueName}-priority-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

// Diagnostics: transactions of the account, and the read/write/delete logs of each service.
resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deadLetterContainerId string = deadLetterContainer.id
output deploymentContainerId string = deploymentContainer.id
output sendQueueName string = sendQueue.name
output poisonQueueName string = poisonQueue.name
output priorityQueueName string = priorityQueue.name
output priorityPoisonQueueName string = priorityPoisonQueue.name
output tableCount int = length(tableNames)
