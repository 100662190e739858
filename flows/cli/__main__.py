"""`python -m flows.cli`: the `apo` command."""

import sys

from flows.cli.main import main

sys.exit(main())
