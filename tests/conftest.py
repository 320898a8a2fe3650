"""Shared fixtures: the CouchDB server(s) come from the library's own pytest plugin."""

pytest_plugins = ["tor_async_couchdb.testing"]
