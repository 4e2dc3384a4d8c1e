"""``python -m parkleit``: the command line."""

import sys

from parkleit.cli import main

sys.exit(main())
