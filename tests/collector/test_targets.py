"""Target expansion: CIDRs, ranges and host names, with the network/broadcast rule stated in
``fleetmeter.wire.targets``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmeter.collector.config import expand_ranges, load_config
from fleetmeter.wire.targets import TargetError, parse_target

from .conftest import write_config


def hosts(text: str) -> list[str]:
    spec = parse_target(text)
    out = list(spec.hosts())
    assert len(out) == spec.count  # the cap is computed without expanding; it must agree
    return out


def test_cidr_leaves_out_network_and_broadcast() -> None:
    assert hosts("192.168.1.0/30") == ["192.168.1.1", "192.168.1.2"]
    assert len(hosts("10.0.0.0/24")) == 254


def test_point_to_point_and_single_host_cidrs_keep_every_address() -> None:
    assert hosts("10.0.0.0/31") == ["10.0.0.0", "10.0.0.1"]
    assert hosts("10.0.0.7/32") == ["10.0.0.7"]


def test_loopback_cidr_keeps_every_address() -> None:
    # The simulator binds one printer per loopback address, .0 and .15 included.
    out = hosts("127.0.1.0/28")
    assert out[0] == "127.0.1.0" and out[-1] == "127.0.1.15" and len(out) == 16


def test_ranges_hosts_and_ipv6() -> None:
    assert hosts("127.0.2.5-127.0.2.9") == [f"127.0.2.{i}" for i in range(5, 10)]
    assert hosts("10.0.0.255-10.0.1.1") == ["10.0.0.255", "10.0.1.0", "10.0.1.1"]
    assert hosts("printer.local") == ["printer.local"]
    assert hosts("Plotter-2.Site.example") == ["plotter-2.site.example"]
    assert hosts("10.0.0.9") == ["10.0.0.9"]
    assert hosts("fd00::/126") == ["fd00::1", "fd00::2", "fd00::3"]
    assert hosts("::1") == ["::1"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10.0.0.5/24", "host bits set"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("10.0.0.9-10.0.0.1", "end is before its start"),
        ("10.0.0.1-fd00::1", "mixes IPv4 and IPv6"),
        ("10.0.0.300", "not a CIDR"),
        ("bad host!", "not a CIDR"),
        ("-lead.example", "not a CIDR"),
        ("", "empty"),
    ],
)
def test_bad_targets(text: str, words: str) -> None:
    with pytest.raises(TargetError, match=words):
        parse_target(text)


def test_expand_ranges_keeps_port_scheme_drivers_and_probes_each_host_once(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "c.toml",
        targets=["127.0.1.0/31", "127.0.1.1"],
        extra="[[ranges]]\ntargets = ['127.0.1.1-127.0.1.2']\nport = 8080\nscheme = 'http'\n",
    )
    items = expand_ranges(load_config(path))
    assert [(i.target.host, i.target.port, i.target.scheme, i.drivers) for i in items] == [
        ("127.0.1.0", None, "https", ("fake",)),
        ("127.0.1.1", None, "https", ("fake",)),
        ("127.0.1.2", 8080, "http", None),
    ]
