"""``python -m walrusds`` runs the command line."""

import sys

from walrusds.cli.main import main

sys.exit(main())
