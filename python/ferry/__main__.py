"""``python -m ferry``: the ``ferry`` command (``ferry start``, ``ferry stop``, ``ferry run``)."""
import sys

from ferry.scripts.cli import main

if __name__ == "__main__":
    sys.exit(main())
