"""HTTP11Transport over TLS, against the test server with a throwaway self-signed certificate."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from support.httpserver import HTTPTestServer
from tor_async_couchdb._exceptions import ConnectError
from tor_async_couchdb._transport import HTTP11Transport, Timeouts


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with the openssl tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_transport(
    port: int, context: ssl.SSLContext | None, server_hostname: str | None
) -> HTTP11Transport:
    return HTTP11Transport(
        scheme="https",
        host="127.0.0.1",
        port=port,
        ssl=context,
        server_hostname=server_hostname,
        timeouts=Timeouts(connect=5, read=5, pool=5),
    )


async def test_https_requests_reuse_one_connection(certificate: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    async with HTTPTestServer(ssl=server_context(certificate)) as server:
        transport = client_transport(server.port, trusting, "localhost")
        for _ in range(5):
            response = await transport.request("GET", "/secure", [])
            assert response.status == 200
        assert server.connections_accepted == 1
        async with transport.stream("GET", "/stream", []) as streamed:
            assert b"/stream" in await streamed.read()
        await transport.aclose()
        assert transport.open_connections == 0
        await server.wait_for_open(0)


async def test_https_idle_connection_closed_by_server_is_dropped(
    certificate: tuple[Path, Path],
) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    async with HTTPTestServer(ssl=server_context(certificate), idle_timeout=0.05) as server:
        transport = client_transport(server.port, trusting, None)  # checks 127.0.0.1 itself
        await transport.request("GET", "/one", [])
        await server.wait_for_open(0)
        await asyncio.sleep(0.05)  # for the close to reach the client
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/two", [])).status == 200
        assert server.connections_accepted == 2
        await transport.aclose()


@pytest.mark.parametrize(
    ("trust", "server_hostname"),
    [
        (True, "wrong.example"),  # the certificate names someone else
        (False, "localhost"),  # the system store does not know the certificate
    ],
)
async def test_tls_failure_is_connect_error(
    certificate: tuple[Path, Path], trust: bool, server_hostname: str
) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0])) if trust else None
    async with HTTPTestServer(ssl=server_context(certificate)) as server:
        transport = client_transport(server.port, context, server_hostname)
        with pytest.raises(ConnectError) as caught:
            await transport.request("GET", "/secure", [])
        assert "certificate" in str(caught.value).lower()
        assert caught.value.url == f"https://127.0.0.1:{server.port}/secure"
        assert transport.open_connections == 0
        await transport.aclose()
