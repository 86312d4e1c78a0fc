"""Wire model v1: units, time zones, versioning, unknown fields, the codec's caps."""

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import zstandard
from pydantic import ValidationError

from fleetmeter.wire import (
    Batch,
    CartridgeTypeUsage,
    DeviceIdentity,
    DeviceReport,
    JobRecord,
    LifetimeUsage,
    MediaTypeUsage,
    ScanUsage,
)
from fleetmeter.wire.codec import CodecError, decode_batch, decompress, encode_batch
from fleetmeter.wire.schema import render

ROOT = Path(__file__).resolve().parents[1]


def _report(**extra: object) -> DeviceReport:
    return DeviceReport(
        collected_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        device=DeviceIdentity(vendor="HP", serial_number="SG123", driver="ledm"),
        **extra,  # type: ignore[arg-type]
    )


def test_timestamps_must_be_aware_and_become_utc() -> None:
    cet = timezone(timedelta(hours=1))
    job = JobRecord(
        job_uuid=uuid.uuid4(), sequence_number=1, completed_at=datetime(2026, 1, 1, 12, tzinfo=cet)
    )
    assert job.completed_at == datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert job.completed_at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match="timezone"):
        JobRecord(job_uuid=uuid.uuid4(), sequence_number=1, completed_at=datetime(2026, 1, 1))


def test_quantities_are_non_negative_integers() -> None:
    with pytest.raises(ValidationError):
        CartridgeTypeUsage(color="C", total_ink_ul=-1)
    with pytest.raises(ValidationError):
        MediaTypeUsage(media_type="bond", area_mm2=1.5)  # type: ignore[arg-type]


def test_unknown_newer_fields_are_kept_through_a_round_trip() -> None:
    doc = json.loads(_report().model_dump_json())
    doc["firmware_channel"] = "beta"
    doc["device"]["rack_position"] = {"row": 3}
    again = DeviceReport.model_validate(doc)
    out = json.loads(again.model_dump_json())
    assert out["firmware_channel"] == "beta"
    assert out["device"]["rack_position"] == {"row": 3}


def test_other_major_schema_version_is_refused_minor_accepted() -> None:
    doc = json.loads(_report().model_dump_json())
    DeviceReport.model_validate({**doc, "schema_version": "1.7"})
    with pytest.raises(ValidationError, match="unsupported schema_version"):
        DeviceReport.model_validate({**doc, "schema_version": "2.0"})


def test_meters_flatten_every_counter() -> None:
    usage = LifetimeUsage(
        impressions=10,
        total_ink_ul=500,
        by_cartridge_type=[CartridgeTypeUsage(color="C", total_ink_ul=300, insertions=2)],
        by_media_type=[MediaTypeUsage(media_type="bond", area_mm2=1000, impressions=4)],
        scan=ScanUsage(scan_jobs=1, scanned_area_mm2=99),
    )
    meters = usage.meters()
    assert meters["impressions"] == 10
    assert meters["ink.C.total_ul"] == 300
    assert meters["ink.C.insertions"] == 2
    assert meters["media.bond.area_mm2"] == 1000
    assert meters["media.bond.impressions"] == 4
    assert meters["scan.scanned_area_mm2"] == 99
    assert "jobs" not in meters  # absent counters are not invented as zero


def _batch(n: int = 3) -> Batch:
    return Batch(batch_id=uuid.uuid4(), created_at=datetime.now(UTC), reports=[_report()] * n)


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_codec_round_trip(encoding: str) -> None:
    batch = _batch()
    assert decode_batch(encode_batch(batch, encoding), encoding) == batch


def test_codec_refuses_a_compression_bomb() -> None:
    bomb = zstandard.ZstdCompressor().compress(b"{" + b" " * (32 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    with pytest.raises(CodecError, match="exceeds"):
        decompress(bomb, "zstd")
    gzip_bomb = gzip.compress(b" " * (32 * 1024 * 1024))
    with pytest.raises(CodecError, match="exceeds"):
        decompress(gzip_bomb, "gzip")


def test_codec_errors_are_clear() -> None:
    with pytest.raises(CodecError, match="invalid zstd"):
        decompress(b"not zstd", "zstd")
    with pytest.raises(CodecError, match="unsupported content encoding"):
        decompress(b"x", "br")
    with pytest.raises(CodecError, match="invalid batch"):
        decode_batch(b'{"batch_id": "nope"}', "identity")


def test_published_json_schema_is_current() -> None:
    published = ROOT / "docs" / "wire-schema-v1.json"
    assert published.read_text() == render(), (
        "docs/wire-schema-v1.json is stale: run `fleetmeter wire-schema > docs/wire-schema-v1.json`"
    )


def test_counters_beyond_64_bits_are_refused_at_the_edge() -> None:
    # A Counter64 sentinel or '1e30' from a device must be a validation error, not a failed
    # database write that blocks every later upload.
    LifetimeUsage(impressions=2**63 - 1)
    with pytest.raises(ValidationError, match="less than or equal"):
        LifetimeUsage(impressions=2**63)
    with pytest.raises(ValidationError):
        MediaTypeUsage(media_type="x" * 201, area_mm2=1)  # becomes part of a meter name
