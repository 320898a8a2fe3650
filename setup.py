"""Packaging that pyproject.toml cannot say: the embedded server's files as package data.

The repository keeps them in ``devserver/`` (where ``npm ci`` installs the clone's server); the
wheel carries the same files as ``tor_async_couchdb/_devserver_files/``, mapped here rather than
copied, so that there is one source of truth.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "tor_async_couchdb._devserver_files"],
    package_dir={"": "src", "tor_async_couchdb._devserver_files": "devserver"},
    package_data={
        "tor_async_couchdb": ["py.typed"],
        "tor_async_couchdb._devserver_files": [
            "package.json",
            "package-lock.json",
            "patch-express-pouchdb.js",
            "watchdog.js",
        ],
    },
)
