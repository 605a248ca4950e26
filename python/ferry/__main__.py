"""``python -m ferry``: the ``ferry`` command (``ferry start``, ``ferry stop``)."""
import sys

from ferry.scripts.cli import main

if __name__ == "__main__":
    sys.exit(main())
