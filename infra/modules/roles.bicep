// Role assignments of the function app's system-assigned identity, one per access path, each on the
// narrowest scope that path allows. Nothing here grants Owner or Contributor, and no key is used.
//
//   path                                  role                                   scope
//   host storage, Flex package, timers    Storage Blob Data Owner                storage account
//   queue trigger, re-enqueue, poison     Storage Queue Data Contributor         storage account
//   ledger, events, consent, audit        Storage Table Data Contributor         storage account
//   CONSENT_HASH_KEY reference            Key Vault Secrets User                 the vault (holds only this secret)
//   telemetry with Entra ingestion        Monitoring Metrics Publisher           the Application Insights component
//   send SMS, email, WhatsApp             "Contact Messages ACS Sender" (custom) the ACS resource
//   publish the status feed               EventGrid Data Sender                  the feed topic (in feed.bicep, with the topic)
//
// ACS authorises Entra tokens with control-plane actions. Microsoft documents Read + Write on
// CommunicationServices and Write on EmailServices as what a custom role needs to send email with
// Entra ID (https://learn.microsoft.com/azure/communication-services/quickstarts/email/send-email-smtp/smtp-authentication,
// "Use a custom role to limit permissions"); it documents no custom role for SMS or Advanced Messages
// (its SMS quickstart with Entra ID assigns Contributor). The built-in "Communication and Email Service
// Owner", which the same page names as giving access to all Communication and Email operations, is the
// fallback (acsRoleMode=builtin); it also lists and regenerates keys and deletes resources, so the
// custom role is the default. docs/deployment.md says what was verified and how to switch.
// The Event Grid system topic's own role (dead-letter container only) is in eventgrid.bicep, and the
// feed topic's (its dead-letter container only) in feed-subscription.bicep.

param principalId string
param storageAccountName string
param keyVaultName string
param appInsightsName string
param acsName string
param acsRoleMode string
param operatorPrincipalId string
param operatorPrincipalType string

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  communicationAndEmailServiceOwner: '09976791-48a7-449e-bb21-39d1a415f350'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource acs 'Microsoft.Communication/communicationServices@2025-09-01' existing = {
  name: acsName
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    description: 'Functions host storage: Flex deployment package, keys, timer and singleton leases.'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    description: 'Queue trigger on the send queue and its poison queue; throttled re-enqueue; poison depth.'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    description: 'Message ledger, delivery events, consent, audit and report tables.'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    description: 'Resolve the CONSENT_HASH_KEY Key Vault reference.'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    description: 'Send telemetry to Application Insights with Entra ID (local auth is disabled).'
  }
}

// A custom role's display name must be unique in the tenant, not only in the resource group
// (https://learn.microsoft.com/azure/role-based-access-control/custom-roles, "Custom role properties":
// Name "must be unique to your tenant", at most 128 characters). Two stacks in resource groups of the
// same name in two subscriptions would otherwise collide (RoleDefinitionWithSameNameExists). The hash
// of the resource group id makes the name unique; the group name and subscription id make it readable.
// Worst case: 28 + 13 + 2 + 46 + 2 + 36 + 1 = 128 characters.
resource acsSenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (acsRoleMode == 'custom') {
  name: guid(resourceGroup().id, 'contact-messages-acs-sender')
  properties: {
    roleName: 'Contact Messages ACS Sender ${uniqueString(resourceGroup().id)} (${take(resourceGroup().name, 46)}, ${subscription().subscriptionId})'
    description: 'Send SMS, email and Advanced Messages through Azure Communication Services with Microsoft Entra ID. No keys, no deletes.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Communication/CommunicationServices/Read'
          'Microsoft.Communication/CommunicationServices/Write'
          'Microsoft.Communication/EmailServices/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// Role assignments take the subscription-level id of a role definition, custom roles included.
var acsRoleName = acsRoleMode == 'custom' ? acsSenderRole.name : roleIds.communicationAndEmailServiceOwner
var acsRoleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acsRoleName)

resource acsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, principalId, acsRoleMode)
  scope: acs
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: acsRoleDefinitionId
    description: 'Send SMS, email and WhatsApp messages with the managed identity (ACS_ENDPOINT).'
  }
}

// Optional: the operator who runs the contactmsg CLI (status, history, replay, erase, opt-outs,
// pause/resume) reads and writes tables and queues. No blob, key or ACS access.
resource operatorTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(storage.id, operatorPrincipalId, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    description: 'contactmsg CLI: ledger, audit, consent and control tables.'
  }
}

resource operatorQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(storage.id, operatorPrincipalId, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    description: 'contactmsg CLI: send, dead-letter inspection and replay.'
  }
}
