#!/bin/sh
# azd preprovision hook. On the first provisioning of an azd environment, generate the consent hash
# key so that main.bicep writes it to Key Vault (parameter consentHashKey). Later provisionings pass
# no key, so the secret in Key Vault is never replaced by accident: replacing it is a rotation, which
# needs the re-hash procedure in docs/runbook.md.
set -eu

if [ "${CONSENT_HASH_KEY_SEEDED:-false}" = "true" ] || [ -n "${CONSENT_HASH_KEY:-}" ]; then
  exit 0
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "openssl is needed to generate CONSENT_HASH_KEY (or run: azd env set CONSENT_HASH_KEY <48 random bytes, base64>)" >&2
  exit 1
fi
azd env set CONSENT_HASH_KEY "$(openssl rand -base64 48 | tr -d '\n')"
echo "Generated CONSENT_HASH_KEY for the first provisioning; it goes to Key Vault and is then removed from the azd environment."
