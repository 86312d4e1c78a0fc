"""The pure additive parser on the API documents in ``fixtures/additive`` (FleetMeter's own
API, frozen from the simulator: see the README there) and on hostile input, which must raise
MalformedResponse, never crash. What the device does not know must stay unknown (None)."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.devices.additive.parse import (
    MAX_RECENT_BUILDS,
    decode,
    finished_after,
    is_additive_device,
    parse_builds,
    parse_identity,
    parse_report,
    parse_status,
)
from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.wire import (
    AlertSeverity,
    DeviceReport,
    EngineState,
    JobStatus,
    ReportKind,
    SupplyState,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "additive"
NOW = datetime(2026, 3, 11, 7, 30, tzinfo=UTC)
SERIAL = "AM88335739"


def doc(name: str) -> Any:
    return decode((FIXTURES / f"{name}-fmsim-fma-5200.json").read_bytes(), what=name)


def docs() -> dict[str, Any]:
    names = ("device", "status", "consumables", "buildunits", "stations", "alerts", "counters")
    return {name: doc(name) for name in names}


def report(
    kind: ReportKind = ReportKind.USAGE, job_cursor: int | None = None, **changes: Any
) -> DeviceReport:
    documents = docs()
    documents.update(changes)
    return parse_report(
        documents,
        host="10.0.7.20",
        history=[doc("builds-after-0")],
        recent=doc("builds-last-10"),
        collected_at=NOW,
        kind=kind,
        job_cursor=job_cursor,
    )


def test_identity() -> None:
    identity = parse_identity(doc("device"), host="10.0.7.20")
    assert (identity.vendor, identity.serial_number, identity.product_number) == (
        "FleetMeter",
        SERIAL,
        "FMA-5200",
    )
    assert identity.product_name == "FM PBF 5200 (simulated)"
    assert identity.firmware_version == "AMF52.4.10.888"
    assert (identity.driver, identity.device_class, identity.address) == (
        "additive",
        "printer3d",
        "10.0.7.20",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8"},  # OctoPrint's version
        {"result": {"klippy_connected": False}},  # Moonraker's /server/info
        {"api": "fleetmeter-additive", "apiVersion": "2.0", "serialNumber": "X"},
        {"api": "fleetmeter-additive", "apiVersion": "1.0", "serialNumber": " "},
        {"api": "fleetmeter-additive", "apiVersion": 1, "serialNumber": "X"},
        [],
        "fleetmeter-additive",
        None,
    ],
)
def test_other_documents_are_not_this_api(body: Any) -> None:
    assert not is_additive_device(body)
    with pytest.raises(MalformedResponse, match="not a fleetmeter-additive device document"):
        parse_identity(body, host=None)


def test_usage_report_from_the_fixtures() -> None:
    r = report()
    assert r.kind is ReportKind.USAGE and r.collected_at == NOW
    assert r.status is not None and r.status.engine_state is EngineState.PRINTING
    assert r.status.state_reasons == ["printing"]
    assert [h.health_percent for h in r.status.printheads] == [
        h["healthPercent"] for h in doc("consumables")["printheads"]
    ]
    assert r.status.printheads[0].colors == ["fusing_agent", "detailing_agent"]

    a = r.additive
    assert a is not None and a.state is EngineState.PRINTING
    assert a.temperatures_c == {
        "print_zone": 175.4,
        "build_platform": 152.7,
        "agent_cartridges": 28,
    }
    build = a.build_job
    assert build is not None
    assert (build.id, build.name, build.material) == (
        "29231ca6-0b79-4906-a0c9-d4160a8ab20d",
        "Clips batch 394",
        "TPU",
    )
    assert (build.layers_done, build.layers_total, build.progress_percent) == (280, 2512, 11)
    assert build.estimated_end == datetime(2026, 3, 11, 12, 6, 31, tzinfo=UTC)
    assert build.build_unit == "BU95908069" and build.build_height_mm == 201
    # A running build's material use is not known yet: unknown, not zero.
    assert build.material_used_g is None and build.agent_used_ul == {}
    assert build.build_volume_mm3 is None and build.sequence_number is None

    history = doc("builds-after-0")["builds"]
    assert len(history) == 18
    assert [j.sequence_number for j in r.jobs] == [b["sequenceNumber"] for b in history]
    assert [str(j.job_uuid) for j in r.jobs] == [b["uuid"] for b in history]
    for job, b in zip(r.jobs, history, strict=True):
        extra = job.model_extra or {}
        assert job.completed_at == datetime.fromisoformat(b["endedAt"])
        assert job.print_time_s == b["printSeconds"]
        assert job.duration_s == round(
            (
                datetime.fromisoformat(b["endedAt"]) - datetime.fromisoformat(b["submittedAt"])
            ).total_seconds()
        )
        assert extra["material"] == "TPU"
        assert extra["material_used_g"] == b["powderUsedGrams"]
        assert extra["agent_used_ul"] == b["agentsUsedMicroliters"]
        assert extra["build_volume_mm3"] == b["buildVolumeCubicMillimeters"]
        assert extra["layers_done"] == b["layersDone"]
        assert job.submitter.user == b["submittedBy"] and job.pages == 0
    failed = [j for j in r.jobs if j.status is JobStatus.FAILED]
    assert sorted((j.model_extra or {})["end_reason"] for j in failed) == [
        "recoater_crash",
        "thermal_fault",
    ]
    for job in failed:
        extra = job.model_extra or {}
        assert extra["layers_done"] < extra["layers_total"]

    assert [b.sequence_number for b in a.recent_builds] == [
        b["sequenceNumber"] for b in reversed(doc("builds-last-10")["builds"])
    ]
    assert len(a.recent_builds) == MAX_RECENT_BUILDS

    counters = doc("counters")
    assert r.usage is not None
    assert r.usage.meters() == {
        "jobs": counters["builds"],
        "build_time_s": counters["buildSeconds"],
        "build_volume_mm3": counters["buildVolumeCubicMillimeters"],
        "material_g": counters["materials"][0]["usedGrams"],
        "material_ul": sum(x["usedMicroliters"] for x in counters["agents"]),
        "material.TPU.g": counters["materials"][0]["usedGrams"],
        "material.detailing_agent.total_ul": counters["agents"][0]["usedMicroliters"],
        "material.fusing_agent.total_ul": counters["agents"][1]["usedMicroliters"],
    }

    station = doc("stations")["stations"][0]
    powder, fusing, detailing = a.materials
    assert (powder.name, powder.kind, powder.location) == (
        "TPU",
        "powder",
        f"station:{station['serialNumber']}",
    )
    assert powder.remaining_g == station["freshPowderGrams"]
    assert powder.consumed_g == counters["materials"][0]["usedGrams"]
    assert (fusing.name, fusing.kind, fusing.status) == ("fusing_agent", "agent", SupplyState.OK)
    assert fusing.consumed_ul == counters["agents"][1]["usedMicroliters"]
    assert detailing.remaining_ul == doc("consumables")["agents"][1]["levelMicroliters"]
    assert [s.serial_number for s in a.stations] == [station["serialNumber"]]
    st = a.stations[0]
    assert st.powder_stored_g == station["freshPowderGrams"] + station["recoveredPowderGrams"]
    assert (st.kind, st.mixing_ratio_percent, st.material) == ("processing", 20, "TPU")
    units = doc("buildunits")["buildUnits"]
    assert [(u.serial_number, u.state, u.location) for u in a.build_units] == [
        (u["serialNumber"], u["state"], u["location"]) for u in units
    ]
    printing = next(u for u in a.build_units if u.location == "printer")
    assert printing.build_job_id == build.id and printing.powder_g == 12408

    assert [(al.code, al.severity, al.component) for al in r.alerts] == [
        ("recoater_crash", AlertSeverity.ERROR, "recoater"),
        ("thermal_fault", AlertSeverity.ERROR, "heating"),
    ]
    assert all(al.cleared_at is not None and al.cleared_at > al.first_seen for al in r.alerts)


def test_health_report_has_no_jobs_and_no_counters() -> None:
    r = report(ReportKind.HEALTH)
    assert r.jobs == [] and r.usage is None
    assert r.additive is not None and r.additive.build_job is not None
    # Recent builds come with every report: the portal shows the latest one's.
    assert len(r.additive.recent_builds) == MAX_RECENT_BUILDS
    powder = r.additive.materials[0]
    assert powder.consumed_g is None  # lifetime use comes with usage reports only


def test_jobs_after_the_cursor_only() -> None:
    sequences = [b["sequenceNumber"] for b in doc("builds-after-0")["builds"]]
    middle = sequences[9]
    assert [j.sequence_number for j in report(job_cursor=middle).jobs] == sequences[10:]
    assert report(job_cursor=sequences[-1]).jobs == []


def test_a_history_page_read_twice_gives_each_build_once() -> None:
    page = doc("builds-after-0")
    builds = parse_builds([page, page])
    assert len(builds) == len(page["builds"])


def test_the_cursor_never_passes_an_unfinished_build() -> None:
    page = copy.deepcopy(doc("builds-after-0"))
    page["builds"][5]["status"] = "printing"  # a device that lists one too early
    builds = parse_builds([page])
    out = finished_after(builds, job_cursor=None)
    assert [b.sequence_number for b in out] == [b.sequence_number for b in builds[:5]]


def test_unknown_material_use_is_left_out_not_zero() -> None:
    page = copy.deepcopy(doc("builds-after-0"))
    page["builds"][0]["powderUsedGrams"] = None
    page["builds"][0]["agentsUsedMicroliters"] = None
    r = parse_report(docs(), host=None, history=[page], collected_at=NOW)
    extra = r.jobs[0].model_extra or {}
    assert "material_used_g" not in extra and "agent_used_ul" not in extra
    assert (r.jobs[1].model_extra or {})["material_used_g"] > 0


def test_unknown_state_and_severity_are_kept_readable() -> None:
    status = copy.deepcopy(doc("status"))
    status["state"] = "calibrating"
    status["doorOpen"] = True
    status["currentBuild"]["progressPercent"] = 100.4
    parsed = parse_status(status)
    assert parsed.state is EngineState.UNKNOWN
    assert parsed.reasons == ["calibrating", "printing", "door_open"]
    assert parsed.build is not None and parsed.build.progress_percent == 100
    alerts = copy.deepcopy(doc("alerts"))
    alerts["alerts"][0]["severity"] = "fatal"
    r = report(alerts=alerts)
    assert r.alerts[0].severity is AlertSeverity.WARNING


def _with(name: str, path: list[Any], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(doc(name))
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return {name: changed}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            _with("status", ["currentBuild", "layersTotal"], "many"),
            "layersTotal: expected a number",
        ),
        (_with("status", ["currentBuild", "uuid"], "not-a-uuid"), "uuid is not a UUID"),
        (_with("status", ["currentBuild", "startedAt"], "2026-03-11T06:24:57"), "without a zone"),
        (_with("status", ["currentBuild", "startedAt"], "yesterday"), "not an ISO 8601 time"),
        (_with("status", ["temperaturesCelsius"], [1, 2]), "expected an object"),
        (_with("consumables", ["agents", 0, "levelPercent"], 150), "value out of range"),
        (_with("consumables", ["agents", 0, "levelMicroliters"], -5), "negative value"),
        (_with("buildunits", ["buildUnits", 0, "serialNumber"], None), "no serialNumber"),
        (_with("stations", ["stations"], {"a": 1}), "expected a list"),
        (_with("alerts", ["alerts", 0, "raisedAt"], None), "needs a code and raisedAt"),
        (_with("counters", ["builds"], 1e300), "number out of range"),
        (_with("counters", ["materials", 0, "usedGrams"], True), "expected a number"),
    ],
)
def test_hostile_documents_raise_malformed_response(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        report(**changes)


def test_hostile_history_raises_malformed_response() -> None:
    page = copy.deepcopy(doc("builds-after-0"))
    page["builds"][3]["sequenceNumber"] = None
    with pytest.raises(MalformedResponse, match="no sequenceNumber"):
        parse_builds([page])
    page = copy.deepcopy(doc("builds-after-0"))
    page["builds"][3]["endedAt"] = None
    with pytest.raises(MalformedResponse, match="needs sequenceNumber, endedAt"):
        parse_report(docs(), host=None, history=[page], collected_at=NOW)


@pytest.mark.parametrize(
    "body",
    [b"<html>Not Found</html>", b'{"a": NaN}', b"[" * 100 + b"]" * 100, b"\xff\xfe"],
)
def test_bodies_that_are_not_strict_json_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        decode(body, what="/api/am/v1/status")


def test_untrusted_text_is_cut_to_the_wire_limits() -> None:
    status = copy.deepcopy(doc("status"))
    status["currentBuild"]["name"] = "x" * 10_000
    status["currentBuild"]["material"] = "<script>" * 100
    build = parse_status(status).build
    assert build is not None and build.name is not None and len(build.name) == 2048
    assert build.material is not None and len(build.material) == 256
    assert uuid.UUID(str(build.uuid))


def test_fixture_files_are_what_the_readme_says() -> None:
    device = json.loads((FIXTURES / "device-fmsim-fma-5200.json").read_text())
    assert device["serialNumber"] == SERIAL and device["api"] == "fleetmeter-additive"
