"""The fruit store: a Tornado REST service over CouchDB, written against the public API only.

- :mod:`.models`: the stored model and the shapes of request bodies;
- :mod:`.actions`: what the service does, as coroutine methods of :class:`FruitStore`;
- :mod:`.handlers`: HTTP in and out, nothing else;
- :mod:`.app`: the application's routes and settings;
- ``python -m samples.fruit_store``: runs it (on the embedded server unless given a URL).
"""
