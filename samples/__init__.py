"""Programs that use tor-async-couchdb as a user would: a Tornado service and its load generator."""
