// The Function App on the Flex Consumption plan (Python 3.11) with a system-assigned identity.
// App settings live in appsettings.bicep so that they are written after the role assignments exist
// (the Key Vault reference and identity-based storage resolve on first start).
// Flex rejects FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION and the content-share
// settings: the runtime is declared in functionAppConfig instead.

param location string
param tags object
param planName string
param name string
param storageBlobEndpoint string
param deploymentContainerName string
param maximumInstanceCount int
param instanceMemoryMB int
@description('Spread instances across availability zones (the platform then keeps at least two always-ready instances per scale group, which are billed). Storage should be zone-redundant too.')
param zoneRedundant bool = true

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the deployment target by this tag (azure.yaml service "api").
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // checkov:skip=CKV_AZURE_212: Flex Consumption manages instance counts itself (scale from zero per function; zone redundancy keeps two instances per scale group); there is no minimum instance setting to give.
    // checkov:skip=CKV_AZURE_213: The App Service health check is not supported on Flex Consumption; failed invocations are watched by the function-failures alert instead.
    // checkov:skip=CKV_AZURE_17: Event Grid cannot present a client certificate when it delivers to the webhook, so client certificates cannot be required.
    // checkov:skip=CKV_AZURE_222: Event Grid delivers to the public webhook endpoint and producers call /api/messages; there is no VNet in this design. Access is by function key.
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP or SCM basic-auth publishing: deployments (azd, az functionapp deployment) use Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
