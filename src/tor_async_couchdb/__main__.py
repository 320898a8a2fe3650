"""``python -m tor_async_couchdb``: the ``tor-async-couchdb`` command line."""

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
