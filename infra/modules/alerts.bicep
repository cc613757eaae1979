// Alerts to an action group that emails the operator. Each alert has a runbook section
// (docs/runbook.md, "Alerts") that says what it means and which queries to run.
// The log alert queries live in infra/alerts/*.kql; tests/infra checks that they only use the
// event, metric and dimension names declared in shared/observability.py.

param location string
param tags object
param actionGroupName string
param actionGroupShortName string
param alertEmail string
param appInsightsId string
param systemTopicId string
param failureRateThresholdPercent int
param unknownExpiredThreshold int
param functionFailureThreshold int
@description('The status feed is on: its two alerts exist only then (its counters are never emitted otherwise).')
param feedEnabled bool

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: actionGroupShortName
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var logAlerts = [
  {
    name: 'poison-queue-depth'
    displayName: 'Contact Messages: poison queue is not empty'
    description: 'A send request failed repeatedly and is waiting in the poison queue. Runbook: Alerts / Poison queue depth.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/poison-depth.kql')
    measure: 'depth'
    aggregation: 'Maximum'
    threshold: 0
    dimensions: []
  }
  {
    name: 'failure-rate'
    displayName: 'Contact Messages: delivery failure rate is high'
    description: 'Failed / (delivered + failed) for a channel is above the threshold. Runbook: Alerts / Failure rate.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT1H'
    query: loadTextContent('../alerts/failure-rate.kql')
    measure: 'failure_pct'
    aggregation: 'Maximum'
    threshold: failureRateThresholdPercent
    dimensions: [
      {
        name: 'channel'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'unknown-or-expired-spike'
    displayName: 'Contact Messages: spike of Unknown or Expired messages'
    description: 'More messages than usual ended Unknown or Expired. Runbook: Alerts / Unknown or Expired spike.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT1H'
    query: loadTextContent('../alerts/unknown-expired.kql')
    measure: 'total'
    aggregation: 'Total'
    threshold: unknownExpiredThreshold
    dimensions: [
      {
        name: 'channel'
        operator: 'Include'
        values: [
          '*'
        ]
      }
      {
        name: 'metric'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'acs-forbidden'
    displayName: 'Contact Messages: ACS refuses the app identity (403)'
    description: 'ACS answered 403 to the function identity; sends are held until its role on the ACS resource is fixed. Runbook: Alerts / ACS forbidden.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/acs-forbidden.kql')
    measure: 'refused'
    aggregation: 'Total'
    threshold: 0
    dimensions: [
      {
        name: 'channel'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
  {
    name: 'function-failures'
    displayName: 'Contact Messages: function invocations are failing'
    description: 'Function invocations failed above the background rate. Runbook: Alerts / Function failures.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/function-failures.kql')
    measure: 'failures'
    aggregation: 'Total'
    threshold: functionFailureThreshold
    dimensions: [
      {
        name: 'operation_Name'
        operator: 'Include'
        values: [
          '*'
        ]
      }
    ]
  }
]

// The status feed (feed.bicep). Both counters come from the app's outbox (shared/services/outbox.py);
// what to do is in docs/status-feed.md, "Azure".
var feedAlerts = [
  {
    name: 'feed-publish-failed'
    displayName: 'Contact Messages: status feed publishes are failing'
    description: 'Status-feed events could not be published to the Event Grid topic; the reconcile sweep retries them. See docs/status-feed.md, Azure / Alerts.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/feed-publish-failed.kql')
    measure: 'failed'
    aggregation: 'Total'
    threshold: 0
    dimensions: []
  }
  {
    name: 'feed-outbox-age'
    displayName: 'Contact Messages: status feed changes waited over a minute'
    description: 'The reconcile sweep published status-feed events that were still in the outbox a minute after their change. See docs/status-feed.md, Azure / Alerts.'
    severity: 3
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/feed-outbox-age.kql')
    measure: 'republished'
    aggregation: 'Total'
    threshold: 0
    dimensions: []
  }
]

resource logAlertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for alert in concat(logAlerts, feedEnabled ? feedAlerts : []): {
  name: 'alert-${alert.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: alert.displayName
    description: alert.description
    severity: alert.severity
    enabled: true
    evaluationFrequency: alert.frequency
    windowSize: alert.window
    scopes: [
      appInsightsId
    ]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: alert.aggregation
          metricMeasureColumn: alert.measure
          dimensions: alert.dimensions
          operator: 'GreaterThan'
          threshold: alert.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

// Events Event Grid gave up on (retry policy exhausted or not retryable) land in the dead-letter
// container. Any of them is a gap in the delivery record until it is replayed.
resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-eventgrid-dead-letters'
  location: 'global'
  tags: tags
  properties: {
    description: 'Event Grid dead-lettered ACS events. Runbook: Alerts / Event Grid dead-letters.'
    severity: 1
    enabled: true
    scopes: [
      systemTopicId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          timeAggregation: 'Total'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id
