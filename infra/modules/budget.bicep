// Monthly cost budget for the resource group with actual and forecast notifications.
// ACS charges (SMS segments, emails, WhatsApp conversations) land in this resource group too, so
// this is the backstop for a runaway send loop; maximumInstanceCount and RATE_LIMITS are the brakes.
// Budgets are not taggable resources.

param name string
param amount int
param startDate string
param contactEmail string
param actionGroupId string

resource budget 'Microsoft.Consumption/budgets@2023-05-01' = {
  name: name
  properties: {
    category: 'Cost'
    amount: amount
    timeGrain: 'Monthly'
    timePeriod: {
      startDate: startDate
    }
    notifications: {
      actual50: {
        enabled: true
        operator: 'GreaterThanOrEqualTo'
        threshold: 50
        thresholdType: 'Actual'
        contactEmails: [
          contactEmail
        ]
      }
      actual90: {
        enabled: true
        operator: 'GreaterThanOrEqualTo'
        threshold: 90
        thresholdType: 'Actual'
        contactEmails: [
          contactEmail
        ]
        contactGroups: [
          actionGroupId
        ]
      }
      forecast100: {
        enabled: true
        operator: 'GreaterThanOrEqualTo'
        threshold: 100
        thresholdType: 'Forecasted'
        contactEmails: [
          contactEmail
        ]
        contactGroups: [
          actionGroupId
        ]
      }
    }
  }
}
