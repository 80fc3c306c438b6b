"""``python -m tui SOCKET``: the terminal UI as its own program.

``anonsip tui`` runs this, so the node package never imports the UI.
"""

import sys

from tui import main

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m tui CONTROL_SOCKET", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
