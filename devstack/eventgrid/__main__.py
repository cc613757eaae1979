"""Entry point for `python -m devstack.eventgrid` (see `devstack.eventgrid.cli`)."""

import sys

from devstack.eventgrid.cli import main

if __name__ == "__main__":
    sys.exit(main())
