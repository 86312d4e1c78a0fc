"""LEDM documents: well-formed, shaped like real HP captures, escaped, consistent with truth."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from defusedxml.ElementTree import fromstring

from fleetmeter.simulator import ledm_docs
from fleetmeter.simulator.models import MODELS
from fleetmeter.simulator.printer import VirtualPrinter
from fleetmeter.wire import JobKind

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ledm"
DD = ledm_docs.DD
DD2 = ledm_docs.DD2
PUDYN = ledm_docs.PUDYN
JADYN = ledm_docs.JADYN

# Paths (Clark notation, below the root) that a real capture and the simulator both have:
# the structure a parser written against the captures relies on.
KEY_PATHS = {
    "DiscoveryTree.xml": [f"{{{ledm_docs.LEDM}}}SupportedTree/{{{DD}}}ResourceURI"],
    "ProductConfigDyn.xml": [
        f"{{{ledm_docs.PRDCFGDYN}}}ProductInformation/{{{DD}}}MakeAndModel",
        f"{{{ledm_docs.PRDCFGDYN}}}ProductInformation/{{{DD}}}SerialNumber",
        f"{{{ledm_docs.PRDCFGDYN}}}ProductInformation/{{{DD}}}ProductNumber",
        f"{{{ledm_docs.PRDCFGDYN}}}ProductInformation/{{{DD}}}Version/{{{DD}}}Revision",
    ],
    "ProductStatusDyn.xml": [
        f"{{{ledm_docs.PSDYN}}}Status/{{{ledm_docs.PSCAT}}}StatusCategory",
        f"{{{ledm_docs.PSDYN}}}AlertTable/{{{DD}}}ModificationNumber",
    ],
    "ConsumableConfigDyn.xml": [
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}ConsumableLabelCode",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}ConsumableTypeEnum",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}ConsumablePercentageLevelRemaining",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}Capacity/{{{DD}}}MaxCapacity",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}Capacity/{{{DD}}}Unit",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}ProductNumber",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}Installation/{{{DD}}}Date",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}Manufacturer/{{{DD}}}Name",
        f"{{{ledm_docs.CCDYN}}}ConsumableInfo/{{{DD}}}ConsumableLifeState/{{{DD}}}Brand",
    ],
    "ProductUsageDyn.xml": [
        f"{{{PUDYN}}}PrinterSubunit/{{{DD}}}TotalImpressions",
        f"{{{PUDYN}}}PrinterSubunit/{{{DD}}}MonochromeImpressions",
        f"{{{PUDYN}}}PrinterSubunit/{{{PUDYN}}}UsageByMarkingAgent/{{{DD2}}}CumulativeMarkingAgentUsed/{{{DD}}}ValueFloat",
        f"{{{PUDYN}}}PrinterSubunit/{{{PUDYN}}}UsageByMedia/{{{DD}}}TotalImpressions",
    ],
    "MediaHandlingDyn.xml": [
        f"{{{ledm_docs.MHDYN}}}MediaHandlingInfo/{{{DD}}}NumOfInputTrays",
        f"{{{ledm_docs.MHDYN}}}OutputBin/{{{DD}}}HPOutputBin",
    ],
    "MediaDyn.xml": [f"{{{DD}}}MediaType"],
    "ProductLogsDyn.xml": [
        f"{{{ledm_docs.PLDYN}}}EventLog/{{{ledm_docs.PLDYN}}}Event/{{{DD}}}EventCode",
    ],
}


def _printer(model_index: int, *, days: int = 30, job_buffer: int = 2000) -> VirtualPrinter:
    p = VirtualPrinter(
        index=model_index,
        seed=11,
        model=MODELS[model_index],
        serial_number=f"SG{20_000_000 + model_index}",
        start=START,
        job_buffer=job_buffer,
    )
    p.advance_to(START + timedelta(days=days))
    return p


@pytest.fixture(scope="module")
def printers() -> list[VirtualPrinter]:
    return [_printer(i) for i in range(len(MODELS))]


def _declared_namespaces(data: bytes) -> set[str]:
    """Namespace URIs declared on the root element."""
    start = data.index(b"<", data.index(b"?>"))
    while data[start : start + 4] == b"<!--":  # skip the disclaimer comment
        start = data.index(b"<", data.index(b"-->", start))
    head = data[start : data.index(b">", start)]
    return {ns.decode() for ns in re.findall(rb'xmlns:\w+="([^"]+)"', head)}


def test_every_document_is_well_formed_utf8_xml(printers: list[VirtualPrinter]) -> None:
    for printer in printers:
        docs = ledm_docs.render_all(printer)
        assert set(docs) == set(ledm_docs.DOCUMENTS)
        for name, data in docs.items():
            assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), name
            data.decode("utf-8")
            fromstring(data)


def test_discovery_tree_lists_every_served_document(printers: list[VirtualPrinter]) -> None:
    root = fromstring(ledm_docs.discovery_tree(printers[0]))
    uris = [e.text for e in root.iter(f"{{{DD}}}ResourceURI")]
    assert uris == [f"/DevMgmt/{name}" for name in ledm_docs.RESOURCES]


@pytest.mark.skipif(not CAPTURES.is_dir(), reason=f"no real LEDM captures at {CAPTURES}")
@pytest.mark.parametrize("name", sorted(KEY_PATHS))
def test_documents_have_the_roots_namespaces_and_structure_of_real_captures(
    printers: list[VirtualPrinter], name: str
) -> None:
    captures = sorted(p for p in CAPTURES.glob(f"*/{name}"))
    assert captures, f"no capture of {name}"
    reals = {path: path.read_bytes() for path in captures}
    for path in KEY_PATHS[name]:  # each key path occurs in at least one real capture
        assert any(fromstring(data).findall(path) for data in reals.values()), path
    for printer in printers:
        ours_bytes = ledm_docs.render(printer, name)
        ours = fromstring(ours_bytes)
        for capture_path, real_bytes in reals.items():
            real = fromstring(real_bytes)
            assert ours.tag == real.tag, capture_path
            # The root's own namespace and HP's data dictionary are declared by both.
            root_ns = real.tag[1:].split("}")[0]
            common = _declared_namespaces(ours_bytes) & _declared_namespaces(real_bytes)
            assert {root_ns, DD} <= common
            assert real[0].tag == ours[0].tag == f"{{{DD}}}Version"
        for path in KEY_PATHS[name]:
            assert ours.findall(path), (printer.model.name, path)


def _value(elem: Element | None, scale: int) -> int:
    """A dd:ValueFloat/dd:Unit quantity in base units, exactly."""
    assert elem is not None
    text = elem.findtext(f"{{{DD}}}ValueFloat")
    assert text is not None
    return int(Decimal(text) * scale)


def test_product_usage_values_equal_the_lifetime_counters(printers: list[VirtualPrinter]) -> None:
    for printer in printers:
        c = printer.counters
        root = fromstring(ledm_docs.product_usage(printer))
        unit = root.find(f"{{{PUDYN}}}PrinterSubunit")
        assert unit is not None
        assert unit.findtext(f"{{{DD}}}TotalImpressions") == str(c.impressions)
        assert unit.findtext(f"{{{DD}}}TotalJobs") == str(c.jobs)
        assert _value(unit.find(f"{{{DD}}}TotalArea"), 1_000_000) == c.total_media_area_mm2
        assert _value(unit.find(f"{{{DD}}}TotalLength"), 1000) == c.total_media_length_mm
        per_color: dict[str, int] = {}
        for block in unit.findall(f"{{{PUDYN}}}UsageByMarkingAgent"):
            used = _value(block.find(f"{{{DD2}}}CumulativeMarkingAgentUsed"), 1000)
            color = block.findtext(f"{{{DD}}}MarkerColor")
            if color is None:
                assert used == c.total_ink_ul
            else:
                per_color[color] = used
                count = block.findtext(f"{{{DD2}}}CumulativeConsumableCount")
                assert count == str(c.insertions[color])
        assert per_color == c.ink_ul
        by_media = {
            b.findtext(f"{{{DD}}}MediaType"): _value(b.find(f"{{{DD}}}TotalArea"), 1_000_000)
            for b in unit.findall(f"{{{PUDYN}}}UsageByMedia")
        }
        assert by_media == c.media_area_mm2
        assert (root.find(f"{{{PUDYN}}}ScanApplicationSubunit") is not None) == printer.model.mfp


def test_job_accounting_holds_the_last_n_jobs_newest_last() -> None:
    printer = _printer(4, days=20, job_buffer=50)
    assert len(printer.jobs) > 50
    root = fromstring(ledm_docs.job_accounting(printer))
    assert root.tag == f"{{{JADYN}}}JobAccountingDyn"
    jobs = root.findall(f"{{{JADYN}}}JobList/{{{JADYN}}}Job")
    assert len(jobs) == 50
    seqs = [int(j.findtext(f"{{{DD}}}SequenceNumber") or 0) for j in jobs]
    assert seqs == [j.sequence_number for j in printer.jobs[-50:]]
    # Rendered fragments of jobs that left the log are dropped (bounded memory).
    assert all(j.xml is None for j in printer.jobs[:-51])


def test_job_records_round_trip_through_the_document(printers: list[VirtualPrinter]) -> None:
    for printer in printers:
        root = fromstring(ledm_docs.job_accounting(printer))
        nodes = root.findall(f"{{{JADYN}}}JobList/{{{JADYN}}}Job")
        assert len(nodes) == len(printer.recent_jobs())
        for node, job in zip(nodes, printer.recent_jobs(), strict=True):
            assert node.findtext(f"{{{DD}}}UUID") == str(job.job_uuid)
            assert node.findtext(f"{{{DD}}}JobName") == job.name
            assert node.findtext(f"{{{JADYN}}}JobType") == job.kind.value
            assert node.findtext(f"{{{DD}}}TotalImpressions") == str(job.pages)
            area = node.findtext(f"{{{JADYN}}}MediaAreaSquareMillimeters")
            assert area == str(job.media_area_mm2)
            ink = {
                i.findtext(f"{{{DD}}}MarkerColor"): int(i.findtext(f"{{{JADYN}}}Microliters") or -1)
                for i in node.iter(f"{{{JADYN}}}Ink")
            }
            assert ink == job.ink_ul
            submitter = node.find(f"{{{JADYN}}}Submitter")
            assert submitter is not None
            assert submitter.findtext(f"{{{JADYN}}}User") == job.user
            if job.kind is JobKind.SCAN:
                assert node.find(f"{{{JADYN}}}MediaType") is None


def test_untrusted_job_names_are_escaped(printers: list[VirtualPrinter]) -> None:
    names = {j.name for p in printers for j in p.recent_jobs()}
    assert "<script>alert(1)</script>.pdf" in names
    assert any(not n.isascii() for n in names)
    assert any("&" in n for n in names)
    for printer in printers:
        data = ledm_docs.job_accounting(printer)
        assert b"<script>" not in data
        root = fromstring(data)  # would fail on an unescaped '<' or '&'
        parsed = {e.text for e in root.iter(f"{{{DD}}}JobName")}
        assert parsed == {j.name for j in printer.recent_jobs()}


def test_text_that_xml_cannot_carry_is_dropped_not_emitted() -> None:
    assert ledm_docs._t("a\x00b\x1bc<&>") == "abc&lt;&amp;&gt;"


def test_unknown_document_is_refused(printers: list[VirtualPrinter]) -> None:
    with pytest.raises(ledm_docs.UnknownDocument):
        ledm_docs.render(printers[0], "SecurityDyn.xml")


def test_rendering_is_fast(printers: list[VirtualPrinter]) -> None:
    import time

    printer = _printer(1, days=90)
    ledm_docs.render_all(printer)  # first render caches the job fragments
    began = time.perf_counter()
    for _ in range(5):
        ledm_docs.render_all(printer)
    assert (time.perf_counter() - began) / 5 < 0.25
