"""ferry's command-line programs (the ``ferry`` command is ``ferry.scripts.cli``)."""
