// Key Vault in RBAC mode, holding only CONSENT_HASH_KEY (secret `consent-hash-key`, written by
// secret.bicep). The app reads it through a Key Vault reference in its app settings; only the
// function identity can read secrets (Key Vault Secrets User, roles.bicep). Purge protection and
// soft delete keep a deleted key recoverable: losing it makes every stored consent hash useless.

param location string
param tags object
param name string
param workspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109: Key Vault references are resolved by the Functions platform over the public endpoint because this design has no VNet; the vault is RBAC-only and only the function identity may read secrets.
    // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access is needed for Key Vault references without VNet integration.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
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

output name string = vault.name
output id string = vault.id
