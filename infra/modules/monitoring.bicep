// Log Analytics workspace and a workspace-based Application Insights component.
// Ingestion into Application Insights accepts Microsoft Entra ID only (local auth disabled): the
// function identity gets Monitoring Metrics Publisher on the component (roles.bicep) and the app
// setting APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD tells the host and the
// OpenTelemetry exporter to use it. The connection string alone can then no longer write telemetry.

param location string
param tags object
param logAnalyticsName string
param appInsightsName string
param retentionInDays int
param dailyQuotaGb int

// 2025-07-01: the GA API version whose REST model azure-mgmt-loganalytics publishes, so the resource
// model check (tests/infra/test_resource_models.py) validates this body against it.
resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    workspaceCapping: {
      dailyQuotaGb: dailyQuotaGb
    }
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
    RetentionInDays: retentionInDays
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
