"""Entry point for `python -m devstack.acs` (see `devstack.acs.cli`)."""

import sys

from devstack.acs.cli import main

if __name__ == "__main__":
    sys.exit(main())
