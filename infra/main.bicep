// Contact Messages: everything the Functions app needs in Azure, with least privilege per path.
//
// Deploy into an existing resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.dev.bicepparam
// or run `azd up` (azure.yaml at the repository root drives the same template).
//
// The Event Grid subscription to `record_event` can only be created once the function code is
// deployed (Event Grid validates the function endpoint), so it is gated by `eventSubscriptionEnabled`:
// provision, deploy the code, then provision again with it set to true. docs/deployment.md has the steps.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and tags
// ---------------------------------------------------------------------------------------------

@description('Short lowercase prefix for resource names (letters and digits, 3 to 8 characters).')
@minLength(3)
@maxLength(8)
param namePrefix string = 'cmsg'

@description('Deployment environment; also the value of the `environment` tag.')
@allowed([
  'dev'
  'test'
  'prod'
])
param environment string

@description('Azure region for the regional resources. Must support the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Value of the `owner` tag on every resource (a team or a person who answers for it).')
@minLength(1)
param owner string

@description('Value of the `costCenter` tag on every resource.')
@minLength(1)
param costCenter string

// ---------------------------------------------------------------------------------------------
// Azure Communication Services
// ---------------------------------------------------------------------------------------------

@description('Where ACS and the Email Communication Service keep data at rest, for example "United States" or "Europe".')
param dataLocation string = 'United States'

@description('Optional custom email domain (for example notify.example.com). Empty: only the Azure-managed domain is used. A custom domain must be verified (DNS records) before it can send.')
param customEmailDomain string = ''

@description('Set to true once the custom domain shows Verified for Domain, SPF, DKIM and DKIM2 (second deployment): links it to ACS. ACS rejects linking an unverified domain, so the first deployment with a custom domain leaves this false. docs/deployment.md, "Custom email domain".')
param customEmailDomainVerified bool = false

@description('Sender usernames to create on the verified custom domain (for example ["notifications"]), once its sending limits are raised: ACS refuses sender usernames on a domain with default limits. Until then it sends as DoNotReply@<domain>. Azure-managed domains only have DoNotReply.')
param customDomainSenderUsernames array = []

@description('Enable open/click tracking (EmailEngagementTrackingReportReceived). Needs a custom domain with raised limits; off by default because it rewrites links.')
param emailEngagementTracking bool = false

@description('Disable ACS access keys so that only Microsoft Entra ID (managed identity) can call the data plane. The app never uses keys in Azure.')
param acsDisableLocalAuth bool = true

@description('How the function identity is allowed to send through ACS: "custom" creates a role with only the three actions Microsoft documents for sending email with Entra ID (needs Owner or User Access Administrator on the resource group; unproven for SMS and WhatsApp, see docs/deployment.md); "builtin" uses the built-in "Communication and Email Service Owner" (all ACS and email operations, keys included). Switch to "builtin" if the custom role cannot be created or sends fail with acs-forbidden.')
@allowed([
  'custom'
  'builtin'
])
param acsRoleMode string = 'custom'

// ---------------------------------------------------------------------------------------------
// Application settings (read by shared/settings.py; tests/infra checks the names match)
// ---------------------------------------------------------------------------------------------

@description('E.164 numbers allowed as SMS senders; the first is the default. Buy and assign the numbers first (docs/runbook.md).')
param smsSenders array = []

@description('Allowed sender addresses; the first is the default. Empty: DoNotReply@ on the Azure-managed domain.')
param emailSenders array = []

@description('WhatsApp channel registration ids (Advanced Messaging); the first is the default.')
param whatsappChannels array = []

@description('Messages per minute per channel or per sender, for example {"sms": 60, "email": 30}. Keep these under your ACS limits. Empty: the app defaults.')
param rateLimits object = {}

@description('Largest SMS accepted, in segments.')
@minValue(1)
@maxValue(50)
param smsMaxSegments int = 10

@description('Estimated cost per unit per channel, used for the cost_estimate metric.')
param priceTable object = {
  sms: json('0.0075')
  email: json('0.00025')
  whatsapp: json('0.005')
}

@description('Minutes to wait for a delivery report before reconciling, per channel.')
param deliverySlaMinutes object = {
  sms: 60
  email: 60
  whatsapp: 60
}

@description('NCRONTAB schedule of the reconcile timer.')
param reconcileSchedule string = '0 */5 * * * *'

@description('NCRONTAB schedule of the retention timer.')
param retentionSchedule string = '0 30 3 * * *'

@description('Days to keep message content, recipient data and rows.')
param retentionDays object = {
  content: 7
  recipient: 30
  rows: 90
}

@description('Prefix of every table name (TABLE_PREFIX).')
@minLength(1)
@maxLength(10)
param tablePrefix string = 'cm'

@description('Tables created up front, without the prefix: the names of shared/schema.py TableNames (a test keeps them equal).')
param tableSuffixes array = [
  'messages'
  'providerids'
  'due'
  'retention'
  'orphans'
  'consent'
  'audit'
  'deadletters'
  'reports'
  'control'
  'inbound'
  'rejectedevents'
]

@description('Name of the send queue (SEND_QUEUE). Its poison queue is "<name>-poison"; the high-priority lane is "<name>-priority" with "<name>-priority-poison" (63 characters at most, hence 47 here). To shard (design §6), deploy another stack with a different name.')
@minLength(3)
@maxLength(47)
param sendQueueName string = 'outbound'

@description('Secret key for the keyed hash of recipient addresses, written to Key Vault only when not empty. Pass it on the first deployment only (openssl rand -base64 48); later deployments leave the stored secret alone. Rotating it is a re-hash operation (docs/runbook.md).')
@secure()
param consentHashKey string = ''

// ---------------------------------------------------------------------------------------------
// Status feed (issue 17, docs/status-feed.md)
// ---------------------------------------------------------------------------------------------

@description('Publish every status change to an Event Grid custom topic (the status feed). On: the topic (Entra-only), "EventGrid Data Sender" on it for the app, FEED_TOPIC_ENDPOINT and FEED_SOURCE, two alerts. Off: none of them, and the app publishes nothing.')
param feedEnabled bool = true

@description('CloudEvents source of the feed\'s events (FEED_SOURCE). Subscribers dedupe by source and id, so keep it stable.')
@minLength(1)
param feedSource string = '/contact-messages'

@description('Example subscriber (infra/modules/feed-subscription.bicep): an HTTPS webhook that answers the CloudEvents validation handshake gets the final status of each message. Empty: none.')
@secure()
param feedSubscriptionWebhookUrl string = ''

@description('Example subscriber: resource id of a Service Bus queue that gets the final status of each message, delivered with the topic\'s identity (grant it "Azure Service Bus Data Sender" on the queue, docs/deployment.md). Empty: none.')
param feedSubscriptionServiceBusQueueId string = ''

// ---------------------------------------------------------------------------------------------
// Scale, storage, monitoring, cost
// ---------------------------------------------------------------------------------------------

@description('Flex Consumption: most instances the app may scale out to (40 to 1000). Bounds ACS spend too.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption instance size in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread Flex Consumption instances across availability zones. The platform then keeps at least two always-ready (billed) instances per scale group; turn it off for dev.')
param zoneRedundant bool = true

@description('Storage redundancy. The account holds the message ledger (the record of what was sent), so production defaults to geo-zone-redundant; LRS is fine for dev.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_GZRS'

@description('Days to keep Event Grid dead-letter blobs (they contain recipient addresses). Replay within this window.')
@minValue(1)
param deadLetterRetentionDays int = 30

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Log Analytics daily ingestion cap in GB (-1: no cap).')
param logDailyQuotaGb int = -1

@description('Create the Event Grid subscription to the function record_event. Needs the code deployed first.')
param eventSubscriptionEnabled bool = false

@description('Event Grid: most delivery attempts per event (1 to 30).')
@minValue(1)
@maxValue(30)
param eventMaxDeliveryAttempts int = 30

@description('Event Grid: minutes an event is retried before it is dead-lettered (1 to 1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveMinutes int = 1440

@description('Event Grid: most events per delivery to record_event (1 to 5000; 1 is Event Grid\'s default). A batch is all-or-none, which recording tolerates because it is idempotent, and the app is tested with batches of 10; locally, batches of 10 did not change the CPU cost per message.')
@minValue(1)
@maxValue(5000)
param eventMaxEventsPerBatch int = 1

@description('Email address that receives alerts and budget notifications.')
@minLength(3)
param alertEmail string

@description('Alert when the failure rate of a channel (failed / (delivered + failed)) is above this percentage.')
@minValue(1)
@maxValue(100)
param failureRateThresholdPercent int = 5

@description('Alert when more than this many messages per hour end Unknown or Expired.')
@minValue(0)
param unknownExpiredThreshold int = 10

@description('Alert when more than this many function invocations fail in 15 minutes.')
@minValue(0)
param functionFailureThreshold int = 5

@description('Monthly budget for the resource group, in the billing currency.')
@minValue(1)
param budgetAmount int = 100

@description('First day of the budget period (yyyy-MM-01). Set it once and keep it: a budget start date is not meant to move.')
param budgetStartDate string = utcNow('yyyy-MM-01')

@description('Optional object id of an operator (user or group) who runs the contactmsg CLI against this stack: gets table and queue data access only.')
param operatorPrincipalId string = ''

@description('Type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'Group'

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix, environment))
var prefix = toLower(namePrefix)
var tags = {
  owner: owner
  costCenter: costCenter
  environment: environment
  application: 'contact-messages'
}
var names = {
  storage: take('st${replace(prefix, '-', '')}${token}', 24)
  keyVault: take('kv-${prefix}-${token}', 24)
  logAnalytics: 'log-${prefix}-${environment}-${token}'
  appInsights: 'appi-${prefix}-${environment}-${token}'
  plan: 'plan-${prefix}-${environment}-${token}'
  functionApp: 'func-${prefix}-${environment}-${token}'
  acs: 'acs-${prefix}-${environment}-${token}'
  emailService: 'ecs-${prefix}-${environment}-${token}'
  systemTopic: 'evgt-acs-${prefix}-${environment}-${token}'
  feedTopic: 'evgt-feed-${prefix}-${environment}-${token}'
  actionGroup: 'ag-${prefix}-${environment}-${token}'
  budget: 'budget-${prefix}-${environment}'
}
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
var feedDeadLetterContainerName = 'feed-deadletter'
var feedSubscriptionEnabled = feedEnabled && !(empty(feedSubscriptionWebhookUrl) && empty(feedSubscriptionServiceBusQueueId))
var consentSecretName = 'consent-hash-key'

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    retentionInDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: names.storage
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    feedDeadLetterContainerName: feedDeadLetterContainerName
    sendQueueName: sendQueueName
    tableNames: [for suffix in tableSuffixes: '${tablePrefix}${suffix}']
    payloadContainerName: '${tablePrefix}-payloads' // shared/schema.py TableNames.payload_container
    deadLetterRetentionDays: deadLetterRetentionDays
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: names.keyVault
    workspaceId: monitoring.outputs.workspaceId
  }
}

// Written on the first deployment only (when a value is passed); see the consentHashKey parameter.
module consentSecret 'modules/secret.bicep' = if (!empty(consentHashKey)) {
  name: 'consent-secret'
  params: {
    keyVaultName: keyVault.outputs.name
    tags: tags
    name: consentSecretName
    value: consentHashKey
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  params: {
    tags: tags
    acsName: names.acs
    emailServiceName: names.emailService
    dataLocation: dataLocation
    customDomain: customEmailDomain
    customDomainVerified: customEmailDomainVerified
    customDomainSenderUsernames: customDomainSenderUsernames
    engagementTracking: emailEngagementTracking
    disableLocalAuth: acsDisableLocalAuth
    workspaceId: monitoring.outputs.workspaceId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    planName: names.plan
    name: names.functionApp
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    zoneRedundant: zoneRedundant
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    acsName: communication.outputs.acsName
    acsRoleMode: acsRoleMode
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module feed 'modules/feed.bicep' = if (feedEnabled) {
  name: 'feed'
  params: {
    location: location
    tags: tags
    topicName: names.feedTopic
    publisherPrincipalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    deadLetterContainerName: feedDeadLetterContainerName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module feedSubscription 'modules/feed-subscription.bicep' = if (feedSubscriptionEnabled) {
  name: 'feed-subscription'
  params: {
    topicName: feed.outputs.topicName
    webhookUrl: feedSubscriptionWebhookUrl
    serviceBusQueueId: feedSubscriptionServiceBusQueueId
    storageAccountName: storage.outputs.name
    deadLetterContainerName: feed.outputs.deadLetterContainerName
    maxDeliveryAttempts: eventMaxDeliveryAttempts
    eventTimeToLiveMinutes: eventTimeToLiveMinutes
  }
}

// The settings hold a Key Vault reference: write them only once the secret exists and the identity may
// read it. A reference the platform cannot resolve when the settings are written stays unresolved
// (the app sees the literal "@Microsoft.KeyVault(...)") until the next configuration change or the
// periodic refetch. https://learn.microsoft.com/azure/app-service/app-service-key-vault-references
// ("Azure Resource Manager deployment": settings as their own resource, after the identity, its
// access and the secret). A dependency on a module that is not deployed (no consentHashKey on later
// runs) is dropped by ARM, and the secret then already exists. The feed's endpoint is written once the
// app may publish to it (feed waits for its role assignment), so the first publish is not refused.
module appSettings 'modules/appsettings.bicep' = {
  name: 'appsettings'
  dependsOn: [
    roles
    consentSecret
  ]
  params: {
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    appInsightsConnectionString: monitoring.outputs.connectionString
    acsEndpoint: 'https://${communication.outputs.acsHostName}'
    acsResourceId: communication.outputs.acsId
    smsSenders: join(smsSenders, ',')
    emailSenders: empty(emailSenders) ? 'DoNotReply@${communication.outputs.managedMailFromDomain}' : join(emailSenders, ',')
    whatsappChannels: join(whatsappChannels, ',')
    rateLimits: string(rateLimits)
    smsMaxSegments: string(smsMaxSegments)
    priceTable: string(priceTable)
    deliverySlaMinutes: string(deliverySlaMinutes)
    reconcileSchedule: reconcileSchedule
    retentionSchedule: retentionSchedule
    retentionDays: string(retentionDays)
    keyVaultName: keyVault.outputs.name
    consentSecretName: consentSecretName
    tablePrefix: tablePrefix
    sendQueueName: sendQueueName
    feedTopicEndpoint: feedEnabled ? feed.outputs.endpoint : ''
    feedSource: feedSource
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    tags: tags
    systemTopicName: names.systemTopic
    acsName: communication.outputs.acsName
    storageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
    functionAppName: functionApp.outputs.name
    subscriptionEnabled: eventSubscriptionEnabled
    maxDeliveryAttempts: eventMaxDeliveryAttempts
    eventTimeToLiveMinutes: eventTimeToLiveMinutes
    maxEventsPerBatch: eventMaxEventsPerBatch
    workspaceId: monitoring.outputs.workspaceId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    actionGroupName: names.actionGroup
    actionGroupShortName: take('${prefix}${environment}', 12)
    alertEmail: alertEmail
    appInsightsId: monitoring.outputs.appInsightsId
    systemTopicId: eventGrid.outputs.systemTopicId
    failureRateThresholdPercent: failureRateThresholdPercent
    unknownExpiredThreshold: unknownExpiredThreshold
    functionFailureThreshold: functionFailureThreshold
    feedEnabled: feedEnabled
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    displayName: 'Contact Messages (${environment})'
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

module budget 'modules/budget.bicep' = {
  name: 'budget'
  params: {
    name: names.budget
    amount: budgetAmount
    startDate: budgetStartDate
    contactEmail: alertEmail
    actionGroupId: alerts.outputs.actionGroupId
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd turns these into environment values)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output ACS_NAME string = communication.outputs.acsName
output ACS_ENDPOINT string = 'https://${communication.outputs.acsHostName}'
output EMAIL_SERVICE_NAME string = communication.outputs.emailServiceName
output EMAIL_MANAGED_DOMAIN string = communication.outputs.managedMailFromDomain
output EMAIL_CUSTOM_DOMAIN_VERIFICATION_RECORDS object = communication.outputs.customDomainVerificationRecords
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.systemTopicName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.workspaceName
output FEED_TOPIC_NAME string = feedEnabled ? feed.outputs.topicName : ''
output FEED_TOPIC_ENDPOINT string = feedEnabled ? feed.outputs.endpoint : ''
@description('Principal id of the feed topic\'s identity: grant it "Azure Service Bus Data Sender" on a subscriber\'s queue.')
output FEED_TOPIC_PRINCIPAL_ID string = feedEnabled ? feed.outputs.principalId : ''
