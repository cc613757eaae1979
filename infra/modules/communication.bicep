// Azure Communication Services, an Email Communication Service with an Azure-managed domain (and an
// optional custom domain), linked to the ACS resource. Phone numbers and the WhatsApp channel cannot
// be provisioned by ARM: they are post-deployment steps (docs/runbook.md).
//
// A custom email domain takes three deployments, because ACS refuses the next step until the last one
// is done (docs/deployment.md, "Custom email domain"):
//   1. customDomain set: the domain is created, with its DNS verification records; nothing links it.
//   2. customDomainVerified=true once Domain, SPF, DKIM and DKIM2 show Verified: the domain is linked.
//      "This domain must be fully verified before attempting to link it to the Communication Service
//      resource." https://learn.microsoft.com/azure/communication-services/quickstarts/email/connect-email-communication-resource
//   3. customDomainSenderUsernames set once the domain's sending limits are raised (a support request):
//      "You can't enable sender usernames ... for custom domains with default sending limits."
//      https://learn.microsoft.com/azure/communication-services/quickstarts/email/add-multiple-senders
//   Until then the custom domain sends as DoNotReply@<domain>, which ACS creates with the domain.

param tags object
param acsName string
param emailServiceName string
param dataLocation string
param customDomain string
@description('The custom domain shows Verified for Domain, SPF, DKIM and DKIM2: link it to ACS and create its sender usernames. ACS rejects linking an unverified domain.')
param customDomainVerified bool
param customDomainSenderUsernames array
param engagementTracking bool
param disableLocalAuth bool
param workspaceId string

var hasCustomDomain = !empty(customDomain)
var linkCustomDomain = hasCustomDomain && customDomainVerified

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

var senderUsernameList = linkCustomDomain ? customDomainSenderUsernames : []

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
    linkedDomains: linkCustomDomain ? [
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
// The DNS records to publish for phase 2 (empty without a custom domain).
output customDomainVerificationRecords object = hasCustomDomain ? customEmailDomain.properties.verificationRecords : {}
