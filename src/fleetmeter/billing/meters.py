"""Meters, their base units and the display units prices are quoted in.

A *meter* is what a plan component prices (``media_area``, ``ink``, ...). Usage is kept
per device as *meter keys* in base units, named like ``LifetimeUsage.meters()`` names its
counters wherever such a counter exists (``media.bond.area_mm2``, ``ink.C.total_ul``), so
that counter deltas and job sums can be compared key by key when usage is reconciled.
"""

from __future__ import annotations

import re
from enum import StrEnum
from fractions import Fraction


class Meter(StrEnum):
    MEDIA_AREA = "media_area"
    INK = "ink"
    IMPRESSIONS = "impressions"
    SCAN_AREA = "scan_area"
    JOBS = "jobs"
    MATERIAL_3D = "material_3d"
    BUILD_HOURS = "build_hours"
    MATERIAL_3D_VOLUME = "material_3d_volume"
    """3D consumables measured by volume: fusing and detailing agents, resin."""
    BUILDS = "builds"
    BUILD_VOLUME = "build_volume"


METER_ALIASES: dict[str, Meter] = {"pages": Meter.IMPRESSIONS}
"""Other names a plan may use for a meter."""

_AREA_UNITS = {"m2": Fraction(1_000_000), "cm2": Fraction(100), "ft2": Fraction(9_290_304, 100)}

UNITS: dict[Meter, dict[str, Fraction]] = {
    Meter.MEDIA_AREA: _AREA_UNITS,
    Meter.SCAN_AREA: _AREA_UNITS,
    Meter.INK: {"mL": Fraction(1_000), "L": Fraction(1_000_000), "uL": Fraction(1)},
    Meter.IMPRESSIONS: {"page": Fraction(1)},
    Meter.JOBS: {"job": Fraction(1)},
    Meter.MATERIAL_3D: {"g": Fraction(1), "kg": Fraction(1_000)},
    Meter.BUILD_HOURS: {"hour": Fraction(3_600), "minute": Fraction(60)},
    Meter.MATERIAL_3D_VOLUME: {"mL": Fraction(1_000), "L": Fraction(1_000_000), "uL": Fraction(1)},
    Meter.BUILDS: {"build": Fraction(1)},
    Meter.BUILD_VOLUME: {
        "cm3": Fraction(1_000),
        "L": Fraction(1_000_000),
        "mm3": Fraction(1),
    },
}
"""Display unit → how many base units (mm², µL, page, job, g, s, build, mm³) one display unit is.

Every factor is exact: 1 ft² = 304.8 mm × 304.8 mm = 92 903.04 mm².
"""

DEFAULT_UNIT: dict[Meter, str] = {
    Meter.MEDIA_AREA: "m2",
    Meter.SCAN_AREA: "m2",
    Meter.INK: "mL",
    Meter.IMPRESSIONS: "page",
    Meter.JOBS: "job",
    Meter.MATERIAL_3D: "g",
    Meter.BUILD_HOURS: "hour",
    Meter.MATERIAL_3D_VOLUME: "mL",
    Meter.BUILDS: "build",
    Meter.BUILD_VOLUME: "cm3",
}

UNIT_SYMBOLS: dict[str, str] = {
    "m2": "m²",
    "cm2": "cm²",
    "ft2": "ft²",
    "uL": "µL",
    "cm3": "cm³",
    "mm3": "mm³",
}
"""How a unit is printed for a person (the plan file spells units in ASCII)."""

# ---------------------------------------------------------------------------- meter keys

TOTAL_MEDIA_AREA = "total_media_area_mm2"
TOTAL_INK = "total_ink_ul"
IMPRESSIONS = "impressions"
JOBS = "jobs"
PRINT_JOBS = "print_jobs"
SCAN_JOBS = "scan.scan_jobs"
COPY_JOBS = "scan.copy_jobs"
SCANNED_AREA = "scan.scanned_area_mm2"
COPIED_AREA = "scan.copied_area_mm2"
MATERIAL = "material_g"
BUILD_TIME = "build_time_s"
MATERIAL_VOLUME = "material_ul"
BUILDS = "builds"
"""Jobs of 3D devices (``device_class`` other than ``printer``): one per build."""
BUILD_VOLUME = "build_volume_mm3"


def media_key(media_type: str) -> str:
    return f"media.{media_type}.area_mm2"


def category_key(category: str) -> str:
    return f"category.{category}.area_mm2"


def ink_key(color: str) -> str:
    return f"ink.{color}.total_ul"


def material_key(material: str) -> str:
    return f"material.{material}.g"


def material_volume_key(material: str) -> str:
    return f"material.{material}.total_ul"


_FIXED_KEYS = frozenset(
    {
        TOTAL_MEDIA_AREA,
        TOTAL_INK,
        IMPRESSIONS,
        JOBS,
        PRINT_JOBS,
        SCAN_JOBS,
        COPY_JOBS,
        SCANNED_AREA,
        COPIED_AREA,
        MATERIAL,
        BUILD_TIME,
        MATERIAL_VOLUME,
        BUILDS,
        BUILD_VOLUME,
    }
)
_KEY_PATTERNS = (
    re.compile(r"media\..+\.area_mm2"),
    re.compile(r"category\..+\.area_mm2"),
    re.compile(r"ink\..+\.total_ul"),
    re.compile(r"material\..+\.g"),
    re.compile(r"material\..+\.total_ul"),
)
# Counters that LifetimeUsage.meters() produces but no component prices: a usage file made
# from counter deltas may carry them, and they are skipped rather than refused.
_UNPRICED_PATTERNS = (
    re.compile(r"mono_impressions|color_impressions|total_media_length_mm"),
    re.compile(r"ink\..+\.(vendor_ul|non_vendor_ul|insertions)"),
    re.compile(r"media\..+\.(length_mm|impressions)"),
    re.compile(r"category\..+\.length_mm"),
)


def is_priced_key(key: str) -> bool:
    """True if some component can price the meter key ``key``."""
    return key in _FIXED_KEYS or any(p.fullmatch(key) for p in _KEY_PATTERNS)


def is_unpriced_counter(key: str) -> bool:
    """True for a lifetime-counter name that billing knows but never prices."""
    return any(p.fullmatch(key) for p in _UNPRICED_PATTERNS)
