"""``python -m tor_async_couchdb``: the ``tor-async-couchdb`` command line."""

from .cli import main

main()
