"""A load generator for the fruit store: virtual users, a live display, a report and a check.

``python -m samples.loadgen --url http://127.0.0.1:8888 --duration 30 --concurrency 50``

It is a lean asyncio program over aiohttp's keep-alive client rather than a load-testing
framework: see ``samples/README.md`` for why.
"""
