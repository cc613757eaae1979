#!/bin/sh
# azd postprovision hook. The consent hash key is in Key Vault now (secret consent-hash-key): remove
# it from the local azd environment (.azure/<env>/.env) and remember that this environment is seeded.
set -eu

if [ -n "${CONSENT_HASH_KEY:-}" ]; then
  azd env set CONSENT_HASH_KEY_SEEDED true
  azd env set CONSENT_HASH_KEY ""
  echo "CONSENT_HASH_KEY is stored in Key Vault and was removed from the azd environment."
fi
