"""`python -m daemons.cli`: the `fedchain` command."""

import sys

from daemons.cli.main import main

sys.exit(main())
