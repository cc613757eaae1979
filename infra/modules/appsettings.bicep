// The function app's settings: exactly the names declared in shared/settings.py SETTINGS, minus the
// local-only secrets (AzureWebJobsStorage, ACS_CONNECTION_STRING: never set in Azure), plus the
// platform settings allowlisted, with reasons, in tests/infra/test_settings_parity.py.
// Keep these literal objects: the parity test reads their keys (tests/infra/bicep.py app_settings).
// The status feed's settings are added only when the feed is on, so that with it off the app sees no
// FEED_TOPIC_ENDPOINT at all and publishes nothing.
//
// This resource replaces all app settings on every deployment. Settings changed by hand (for
// example AzureWebJobs.record_event.Disabled during an incident) are reset by the next deployment.

param functionAppName string
param storageAccountName string
param appInsightsConnectionString string
param acsEndpoint string
param acsResourceId string
param smsSenders string
param emailSenders string
param whatsappChannels string
param rateLimits string
param smsMaxSegments string
param priceTable string
param deliverySlaMinutes string
param reconcileSchedule string
param retentionSchedule string
param retentionDays string
param keyVaultName string
param consentSecretName string
param tablePrefix string
param sendQueueName string
@description('Endpoint of the status feed\'s Event Grid topic. Empty: the feed is off and neither feed setting is written.')
param feedTopicEndpoint string
@description('CloudEvents source of the status feed\'s events.')
param feedSource string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// checkov applies its web-app checks to every sites/config resource. These are app settings: each
// skipped check concerns a site property that is set, or does not apply, in functionapp.bicep.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union({
    // checkov:skip=CKV_AZURE_13: EasyAuth is not supported on Flex Consumption; functions require keys (see functionapp.bicep).
    // checkov:skip=CKV_AZURE_222: Public network access is a site property, justified in functionapp.bicep (Event Grid webhook, no VNet).
    // checkov:skip=CKV_AZURE_88: Azure Files content shares do not exist on Flex Consumption; the package lives in a blob container.
    // checkov:skip=CKV_AZURE_80: .NET Framework version does not apply: this is a Python 3.11 app on Linux.
    // checkov:skip=CKV_AZURE_63: App Service HTTP (web server) logs are not produced on Flex Consumption; requests are logged to Application Insights (requests table).
    // checkov:skip=CKV_AZURE_65: Detailed error pages are an IIS (Windows) feature; errors are logged to Application Insights.
    // checkov:skip=CKV_AZURE_66: Failed request tracing is an IIS (Windows) feature; failed invocations are in Application Insights and alerted on.
    // Identity-based host and binding storage.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    // The endpoints as the account reports them, so that the host and the app reach the right cloud
    // (sovereign clouds do not use core.windows.net). Functions: "Connecting to host storage with an identity".
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    // AZURE_CLIENT_ID stays unset: the app's identity is system-assigned (functionapp.bicep). With a
    // user-assigned identity, set it, AzureWebJobsStorage__clientId and ClientId= in the authentication string.
    // Entra ID, never keys: the function identity has a scoped ACS role (roles.bicep).
    ACS_ENDPOINT: acsEndpoint
    ACS_RESOURCE_IDS: acsResourceId
    SMS_SENDERS: smsSenders
    EMAIL_SENDERS: emailSenders
    WHATSAPP_CHANNELS: whatsappChannels
    RATE_LIMITS: rateLimits
    SMS_MAX_SEGMENTS: smsMaxSegments
    PRICE_TABLE: priceTable
    DELIVERY_SLA_MINUTES: deliverySlaMinutes
    RECONCILE_SCHEDULE: reconcileSchedule
    RETENTION_SCHEDULE: retentionSchedule
    RETENTION_DAYS: retentionDays
    // A Key Vault reference, resolved by the platform with the app's identity (Key Vault Secrets User).
    CONSENT_HASH_KEY: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${consentSecretName})'
    TABLE_PREFIX: tablePrefix
    SEND_QUEUE: sendQueueName
    // Backoff of sends that failed transiently (shared/retry.py): about 25 to 50 minutes of retries.
    SEND_RETRY: '{"baseSeconds": 5, "capSeconds": 300, "attempts": 15}'
    ACS_TIMEOUTS: '{"connectSeconds": 10, "readSeconds": 30}'
    // Meta refuses free-form WhatsApp text outside the 24-hour customer service window (131047): refuse it first.
    WHATSAPP_SERVICE_WINDOW: 'enforce'
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    // One trace in ten (its invocation span and ~10 storage and ACS dependencies per message): bench/cost.py
    // measured dependencies as half of the ingested bytes. Log records and metrics are never sampled.
    TRACE_SAMPLING_RATIO: '0.1'
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  }, empty(feedTopicEndpoint) ? {} : {
    // Published with the managed identity ("EventGrid Data Sender" on the topic, feed.bicep); the
    // topic has local auth disabled, so FEED_TOPIC_KEY stays unset.
    FEED_TOPIC_ENDPOINT: feedTopicEndpoint
    FEED_SOURCE: feedSource
  })
}
