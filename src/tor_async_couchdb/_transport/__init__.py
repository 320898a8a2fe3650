"""HTTP transports: the interface the CouchDB layer talks to, the real HTTP/1.1 pool, and a mock.

The modules behind this package are private; import from here.
"""

from ._base import Limits, Response, StreamResponse, Timeouts, Transport
from ._http11 import HTTP11Transport, TransportStats
from ._mock import MockRequest, MockStreamResponse, MockTransport

__all__ = [
    "HTTP11Transport",
    "Limits",
    "MockRequest",
    "MockStreamResponse",
    "MockTransport",
    "Response",
    "StreamResponse",
    "Timeouts",
    "Transport",
    "TransportStats",
]
