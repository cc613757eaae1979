#!/bin/sh
# azd postdeploy hook. Event Grid validates an AzureFunction endpoint when the subscription is
# created, so the subscription to record_event can only exist once the code is deployed. After the
# first deployment, turn it on and provision again (idempotent for everything else).
set -eu

if [ "${EVENT_SUBSCRIPTION_ENABLED:-false}" = "true" ]; then
  exit 0
fi
azd env set EVENT_SUBSCRIPTION_ENABLED true
azd provision --no-prompt
