// Development stack: small, cheap, LRS storage, low limits. Secrets come from the environment:
//   CONSENT_HASH_KEY (first deployment only; see docs/deployment.md).
using './main.bicep'

param environment = 'dev'
param namePrefix = 'cmsg'
param owner = readEnvironmentVariable('CONTACTMSG_OWNER', 'contact-messages-team')
param costCenter = readEnvironmentVariable('CONTACTMSG_COST_CENTER', 'engineering')
param alertEmail = readEnvironmentVariable('CONTACTMSG_ALERT_EMAIL', 'contact-messages-alerts@example.com')
param dataLocation = 'United States'

// Post-deployment: buy numbers, register WhatsApp, then list them here and redeploy.
param smsSenders = []
param emailSenders = []
param whatsappChannels = []

// Azure-managed email domains have low sending limits: keep email slow in dev.
param rateLimits = {
  sms: 30
  email: 5
  whatsapp: 30
}

param storageSku = 'Standard_LRS'
param zoneRedundant = false
param maximumInstanceCount = 40
param instanceMemoryMB = 2048
param logRetentionDays = 30
param logDailyQuotaGb = 2
param budgetAmount = 50
param failureRateThresholdPercent = 10
param unknownExpiredThreshold = 20

param eventSubscriptionEnabled = bool(readEnvironmentVariable('EVENT_SUBSCRIPTION_ENABLED', 'false'))
param consentHashKey = readEnvironmentVariable('CONSENT_HASH_KEY', '')
param operatorPrincipalId = readEnvironmentVariable('CONTACTMSG_OPERATOR_PRINCIPAL_ID', '')

// Status feed (docs/status-feed.md, "Azure"): on unless CONTACTMSG_FEED_ENABLED=false. The example
// subscription is deployed for a webhook URL and/or a Service Bus queue id given in the environment.
param feedEnabled = bool(readEnvironmentVariable('CONTACTMSG_FEED_ENABLED', 'true'))
param feedSubscriptionWebhookUrl = readEnvironmentVariable('CONTACTMSG_FEED_WEBHOOK_URL', '')
param feedSubscriptionServiceBusQueueId = readEnvironmentVariable('CONTACTMSG_FEED_QUEUE_ID', '')
