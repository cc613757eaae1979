// Azure Communication Services, an Email Communication Service with an Azure-managed domain (and an
// optional custom domain), linked to the ACS resource. Phone numbers and the WhatsApp channel cannot
// be provisioned by ARM: they are post-deployment steps (docs/runbook.md).

param tags object
param acsName string
param emailServiceName string
param dataLocation string
param customDomain string
param customDomainSenderUsernames array
param engagementTracking bool
param disableLocalAuth bool
param workspaceId string

var hasCustomDomain = !empty(customDomain)

resource emailService 'Microsoft.Communication/emailServices@2025-09-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

// Azure-managed domains are named AzureManagedDomain and send as DoNotReply@<guid>.azurecomm.net.
// Their sending limits are low; a verified custom domain can have them raised.
resource managedDomain 'Microsoft.Communication/emailServices/domains@2025-09-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource customEmailDomain 'Microsoft.Communication/emailServices/domains@2025-09-01' = if (hasCustomDomain) {
  parent: emailService
  name: hasCustomDomain ? customDomain : 'unused.invalid'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'CustomerManaged'
    userEngagementTracking: engagementTracking ? 'Enabled' : 'Disabled'
  }
}

var senderUsernameList = hasCustomDomain ? customDomainSenderUsernames : []

resource senderUsernames 'Microsoft.Communication/emailServices/domains/senderUsernames@2025-09-01' = [for username in senderUsernameList: {
  parent: customEmailDomain
  name: username
  properties: {
    username: username
    displayName: username
  }
}]

resource acs 'Microsoft.Communication/communicationServices@2025-09-01' = {
  name: acsName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    disableLocalAuth: disableLocalAuth
    linkedDomains: hasCustomDomain ? [
      managedDomain.id
      customEmailDomain.id
    ] : [
      managedDomain.id
    ]
  }
}

// SMS, email and Advanced Messaging operational logs, plus metrics (throttling shows up here too).
resource acsDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: acs
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

output acsId string = acs.id
output acsName string = acs.name
output acsHostName string = acs.properties.hostName
output emailServiceName string = emailService.name
output managedMailFromDomain string = managedDomain.properties.mailFromSenderDomain
