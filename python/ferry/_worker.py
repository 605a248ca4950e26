"""Entry point of an actor worker process: ``python -m ferry._worker``."""
from ferry._private.worker import main

if __name__ == "__main__":
    main()
