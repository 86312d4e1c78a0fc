"""Response and request bodies of the read API (separate from the wire model on purpose)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DeviceOut(_FromRow):
    id: uuid.UUID
    customer_id: uuid.UUID
    vendor: str
    serial_number: str
    model: str | None
    product_number: str | None
    firmware: str | None
    driver: str
    device_class: str
    address: str | None
    first_seen_at: datetime
    last_seen_at: datetime | None
    engine_state: str | None
    status: dict[str, Any] | None
    status_at: datetime | None


class JobOut(_FromRow):
    id: uuid.UUID
    device_id: uuid.UUID
    job_uuid: uuid.UUID
    sequence_number: int
    kind: str
    name: str | None
    status: str
    source: str | None
    submitter_project: str | None
    submitter_application: str | None
    submitter_account: str | None
    submitter_user: str | None
    submitter_user_defined: str | None
    submitted_at: datetime | None
    completed_at: datetime
    print_time_s: int | None
    duration_s: int | None
    coverage_category: str | None
    application_category: str | None
    print_quality: str | None
    pages: int
    copies: int
    media_type: str | None
    media_width_mm: int | None
    media_length_mm: int | None
    media_area_mm2: int
    printed_area_mm2: int
    scan_area_mm2: int
    ink_ul: dict[str, int]
    total_ink_ul: int
    pixel_coverage_ppm: dict[str, int]
    category_usage: list[dict[str, Any]]
    extra: dict[str, Any] | None
    received_at: datetime


class Page(BaseModel, Generic[T]):
    """One page of a list; ask for the next with ``offset=next_offset`` until it is null."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None


class CountersOut(BaseModel):
    device_id: uuid.UUID
    meters: dict[str, int] = Field(description="Latest value per meter name (wire meter names).")
    read_at: dict[str, datetime] = Field(description="When each of those values was read.")


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class SessionOut(BaseModel):
    user_id: uuid.UUID
    reseller_id: uuid.UUID
    email: str
