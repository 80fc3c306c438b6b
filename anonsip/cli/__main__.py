"""``python -m anonsip.cli``: the same as the ``anonsip`` command."""

import sys

from anonsip.cli import main

sys.exit(main())
