"""``python -m morgan``."""

import sys

from morgan.cli import main

sys.exit(main())
