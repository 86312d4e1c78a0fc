"""The IPP client's HTTP side with httpx's MockTransport: what it sends, and how every kind of
bad answer becomes a devices error. (The real peer is in test_ipp_driver.py.)"""

from __future__ import annotations

import struct
from collections.abc import Callable

import httpx
import pytest
from pyipp.enums import IppOperation, IppTag

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import DeviceUnreachable, MalformedResponse, NotSupported
from fleetmeter.devices.ipp.client import IppClient, NoPrinterHere, encode_request, resolve_target
from fleetmeter.devices.ipp.parse import decode
from tests.devices.ipp_fixtures import ipp_response as response

pytestmark = pytest.mark.anyio

TARGET = Target(host="printer.test", port=631, scheme="http")
IPP = {"Content-Type": "application/ipp"}


def request_id(request: httpx.Request) -> int:
    value: int = struct.unpack_from(">i", request.content, 4)[0]
    return value


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[IppClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return IppClient(TARGET, PinStore(), client=http), http


async def test_get_jobs_request_is_a_read_only_ipp_post() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=IPP, content=response(request_id=request_id(request)))

    client, http = client_for(handler)
    async with http, client:
        await client.get_jobs("completed", ["job-id", "job-uuid"], limit=50)
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", "http://printer.test:631/ipp/print")
    assert request.headers["Content-Type"] == "application/ipp"
    message = decode(request.content)
    assert message.version == (2, 0)
    assert message.status_code == IppOperation.GET_JOBS  # the operation-id, in a request
    assert message.operation["printer-uri"] == "ipp://printer.test:631/ipp/print"
    assert message.operation["requesting-user-name"] == "fleetmeter"
    assert message.operation["which-jobs"] == "completed"
    assert message.operation["my-jobs"] is False
    assert message.operation["limit"] == 50
    assert message.operation["requested-attributes"] == ["job-id", "job-uuid"]


async def test_version_not_supported_is_retried_in_ipp_1_1() -> None:
    versions: list[tuple[int, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        version = (request.content[0], request.content[1])
        versions.append(version)
        status = 0x0503 if version == (2, 0) else 0
        body = response(status=status, request_id=request_id(request))
        return httpx.Response(200, headers=IPP, content=body)

    client, http = client_for(handler)
    async with http, client:
        await client.get_printer_attributes(["printer-state"])
        await client.get_printer_attributes(["printer-state"])  # remembered: 1.1 straight away
    assert versions == [(2, 0), (1, 1), (1, 1)]


@pytest.mark.parametrize(
    ("status", "headers", "error", "reason"),
    [
        (404, IPP, NoPrinterHere, "no IPP printer at /ipp/print"),
        (401, IPP, NotSupported, "requires authentication"),
        (426, IPP, NotSupported, "requires TLS"),
        (500, IPP, MalformedResponse, "unexpected HTTP status 500"),
        (200, {"Content-Type": "text/html"}, MalformedResponse, "not an IPP response"),
    ],
)
async def test_http_errors(
    status: int, headers: dict[str, str], error: type[Exception], reason: str
) -> None:
    client, http = client_for(lambda request: httpx.Response(status, headers=headers))
    async with http, client:
        with pytest.raises(error, match=reason):
            await client.get_printer_attributes(["printer-state"])


async def test_oversized_body_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=IPP, content=b"\x02\x00" + b"\x00" * 2000)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        async with IppClient(TARGET, PinStore(), client=http, max_body_bytes=1000) as client:
            with pytest.raises(MalformedResponse, match="exceeds the 1000-byte limit"):
                await client.get_printer_attributes(["printer-state"])
        # The caller's client is left open: the caller owns it.
        assert not http.is_closed


async def test_answer_to_another_request_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = response(request_id=request_id(request) + 1)
        return httpx.Response(200, headers=IPP, content=body)

    client, http = client_for(handler)
    async with http, client:
        with pytest.raises(MalformedResponse, match="request-id"):
            await client.request(IppOperation.GET_PRINTER_ATTRIBUTES, [])


async def test_unreachable_device(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port, scheme="http")
    async with IppClient(target, PinStore(), timeout_s=2) as client:
        with pytest.raises(DeviceUnreachable, match=f"127.0.0.1:{closed_port}") as info:
            await client.get_printer_attributes(["printer-state"])
    assert isinstance(info.value.__cause__, httpx.TransportError)


async def test_defaults_and_uris() -> None:
    assert resolve_target(Target(host="p")).port == 631
    async with IppClient(Target(host="fe80::1", scheme="https"), PinStore()) as client:
        assert client.printer_uri == "ipps://[fe80::1]:631/ipp/print"
        assert client.address == "fe80::1:631"
    with pytest.raises(ValueError, match="unsupported scheme"):
        IppClient(Target(host="p", scheme="ftp"), PinStore())
    with pytest.raises(ValueError, match="base_path"):
        IppClient(Target(host="p"), PinStore(), base_path="ipp/print")


def test_integer_attribute_encoding_for_limit() -> None:
    # pyipp's own tag table has no entry for "limit": the client passes the tag explicitly.
    body = encode_request(IppOperation.GET_JOBS, [("limit", 7, IppTag.INTEGER)], request_id=1)
    assert decode(body).operation["limit"] == 7
