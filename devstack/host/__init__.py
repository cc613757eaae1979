"""A local Azure Functions runner for Python v2 apps, faithful to the host where it matters.

Why it exists: Core Tools cannot be installed here, yet the app must be exercised with the host's
real semantics (queue polling, visibility, poison queues, base64, Event Grid handshakes, timers with a
singleton lease, HTTP routes). `python -m devstack.host --app-dir DIR` loads any `function_app.py`
unchanged and drives it against Azurite; `devstack.host.process.RunnerProcess` starts it for tests.
See `docs/local-runner.md` for the settings it honours and where it deviates from the real host.
"""
