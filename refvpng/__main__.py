"""``python -m refvpng`` is the ``refvpng`` command."""

import sys

from refvpng.cli import main

sys.exit(main())
