"""Entry point: `python -m devstack.host --app-dir DIR [--port 7071] ...`."""

from devstack.host.cli import main

raise SystemExit(main())
