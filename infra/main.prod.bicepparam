// Production stack: zone-redundant storage, 90-day logs, alerting thresholds for real traffic.
// Secrets come from the environment: CONSENT_HASH_KEY (first deployment only; docs/deployment.md).
using './main.bicep'

param environment = 'prod'
param namePrefix = 'cmsg'
param owner = readEnvironmentVariable('CONTACTMSG_OWNER')
param costCenter = readEnvironmentVariable('CONTACTMSG_COST_CENTER')
param alertEmail = readEnvironmentVariable('CONTACTMSG_ALERT_EMAIL')
param dataLocation = 'United States'

// Optional custom domain, in three deployments (docs/deployment.md, "Custom email domain"): create it,
// then set CONTACTMSG_EMAIL_DOMAIN_VERIFIED=true once its DNS records show Verified (links it to ACS).
param customEmailDomain = readEnvironmentVariable('CONTACTMSG_EMAIL_DOMAIN', '')
param customEmailDomainVerified = bool(readEnvironmentVariable('CONTACTMSG_EMAIL_DOMAIN_VERIFIED', 'false'))
param customDomainSenderUsernames = []

// Fill in after the post-deployment steps (numbers bought, domain verified, WhatsApp registered).
param smsSenders = []
param emailSenders = []
param whatsappChannels = []

// Keep each limit under what ACS grants this subscription (docs/runbook.md, "Limits").
param rateLimits = {
  sms: 60
  email: 30
  whatsapp: 60
}

param storageSku = 'Standard_GZRS'
param zoneRedundant = true
param maximumInstanceCount = 100
param instanceMemoryMB = 2048
param logRetentionDays = 90
param logDailyQuotaGb = -1
param budgetAmount = 500
param failureRateThresholdPercent = 5
param unknownExpiredThreshold = 10
param functionFailureThreshold = 5

param eventSubscriptionEnabled = bool(readEnvironmentVariable('EVENT_SUBSCRIPTION_ENABLED', 'false'))
param consentHashKey = readEnvironmentVariable('CONSENT_HASH_KEY', '')
param operatorPrincipalId = readEnvironmentVariable('CONTACTMSG_OPERATOR_PRINCIPAL_ID', '')
param operatorPrincipalType = 'Group'

// Status feed (docs/status-feed.md, "Azure"): on unless CONTACTMSG_FEED_ENABLED=false. The example
// subscription is deployed for a webhook URL and/or a Service Bus queue id given in the environment.
param feedEnabled = bool(readEnvironmentVariable('CONTACTMSG_FEED_ENABLED', 'true'))
param feedSubscriptionWebhookUrl = readEnvironmentVariable('CONTACTMSG_FEED_WEBHOOK_URL', '')
param feedSubscriptionServiceBusQueueId = readEnvironmentVariable('CONTACTMSG_FEED_QUEUE_ID', '')
