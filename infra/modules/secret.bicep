// CONSENT_HASH_KEY in Key Vault (Key Vault secret names cannot contain underscores, hence
// `consent-hash-key`). main.bicep deploys this module only when a value is passed, so a later
// deployment without the value never replaces (rotates) the key by accident: rotating it changes
// every consent hash (docs/runbook.md, "Rotate").

param keyVaultName string
param tags object
param name string
@secure()
param value string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_41: The consent hash key must not expire on its own: an expired secret breaks the Key Vault reference and every send stops. It is rotated deliberately, with a re-hash (docs/runbook.md).
    value: value
    contentType: 'text/plain; purpose=consent-hash-key'
    attributes: {
      enabled: true
    }
  }
}
