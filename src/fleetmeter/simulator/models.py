"""Catalogue of the simulated large-format printer models, inks, printheads and media.

Product numbers follow HP's public naming style (DesignJet T830 / T1700 / Z9+, PageWide XL);
they are plausible, not a claim about any real device's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

NEUTRAL_COLORS = frozenset({"K", "MK", "PK", "G", "LG"})
"""Colour codes whose use alone makes an impression monochrome."""


@dataclass(frozen=True)
class InkSpec:
    color: str
    """Colour code as on the cartridge label: C, M, Y, K, MK, PK, G, LG, CR, LM."""
    product_number: str
    name: str
    capacity_ul: int


@dataclass(frozen=True)
class PrintheadSpec:
    colors: tuple[str, ...]
    product_number: str
    name: str
    life_ul: int
    """Ink (µL) through the head over which its health falls from 100 % to 0 %."""


@dataclass(frozen=True)
class MediaSpec:
    id: str
    roll_length_mm: int
    names: dict[str, str]
    """Localised display names by BCP-47 language tag."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    product_number: str
    firmware_prefix: str
    inks: tuple[InkSpec, ...]
    printheads: tuple[PrintheadSpec, ...]
    rolls: int
    roll_widths_mm: tuple[int, ...]
    media: tuple[str, ...]
    mfp: bool
    seconds_per_m2: float
    """Print time per square metre at normal quality."""
    job_mix: dict[str, float]
    """Relative weights of job categories (print application categories, ``scan``, ``copy``)."""
    fleet_weight: float


MEDIA: dict[str, MediaSpec] = {
    m.id: m
    for m in (
        MediaSpec(
            "bond",
            45_720,
            {
                "en": "Bond paper",
                "de": "Bond-Papier",
                "fr": "Papier bond",
                "es": "Papel bond",
                "it": "Carta comune",
                "ja": "普通紙",
            },
        ),
        MediaSpec(
            "coated",
            45_720,
            {
                "en": "Coated paper",
                "de": "Gestrichenes Papier",
                "fr": "Papier couché",
                "es": "Papel recubierto",
                "it": "Carta patinata",
                "ja": "コート紙",
            },
        ),
        MediaSpec(
            "heavy_coated",
            30_480,
            {
                "en": "Heavyweight coated paper",
                "de": "Schweres gestrichenes Papier",
                "fr": "Papier couché à fort grammage",
                "es": "Papel recubierto de gramaje extra",
                "it": "Carta patinata pesante",
                "ja": "厚手コート紙",
            },
        ),
        MediaSpec(
            "photo_gloss",
            30_480,
            {
                "en": "Photo gloss paper",
                "de": "Hochglänzendes Fotopapier",
                "fr": "Papier photo brillant",
                "es": "Papel fotográfico brillante",
                "it": "Carta fotografica lucida",
                "ja": "光沢フォト用紙",
            },
        ),
        MediaSpec(
            "photo_satin",
            30_480,
            {
                "en": "Photo satin paper",
                "de": "Seidenmattes Fotopapier",
                "fr": "Papier photo satiné",
                "es": "Papel fotográfico satinado",
                "it": "Carta fotografica satinata",
                "ja": "サテンフォト用紙",
            },
        ),
        MediaSpec(
            "polypropylene",
            22_860,
            {
                "en": "Polypropylene film",
                "de": "Polypropylenfolie",
                "fr": "Film polypropylène",
                "es": "Película de polipropileno",
                "it": "Pellicola in polipropilene",
                "ja": "ポリプロピレンフィルム",
            },
        ),
    )
}


def _inks_711() -> tuple[InkSpec, ...]:
    return (
        InkSpec("C", "CZ130A", "HP 711 29-ml Cyan Ink Cartridge", 29_000),
        InkSpec("M", "CZ131A", "HP 711 29-ml Magenta Ink Cartridge", 29_000),
        InkSpec("Y", "CZ132A", "HP 711 29-ml Yellow Ink Cartridge", 29_000),
        InkSpec("MK", "CZ133A", "HP 711 80-ml Black Ink Cartridge", 80_000),
    )


def _inks_730() -> tuple[InkSpec, ...]:
    return (
        InkSpec("C", "P2V68A", "HP 730 300-ml Cyan Ink Cartridge", 300_000),
        InkSpec("M", "P2V69A", "HP 730 300-ml Magenta Ink Cartridge", 300_000),
        InkSpec("Y", "P2V70A", "HP 730 300-ml Yellow Ink Cartridge", 300_000),
        InkSpec("MK", "P2V71A", "HP 730 300-ml Matte Black Ink Cartridge", 300_000),
        InkSpec("G", "P2V72A", "HP 730 300-ml Gray Ink Cartridge", 300_000),
        InkSpec("PK", "P2V73A", "HP 730 300-ml Photo Black Ink Cartridge", 300_000),
    )


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="HP DesignJet T830 36-in MFP",
        family="HP DesignJet T830 MFP series",
        product_number="F9A30A",
        firmware_prefix="GGM",
        inks=_inks_711(),
        printheads=(PrintheadSpec(("C", "M", "Y", "MK"), "C1Q10A", "HP 711 Printhead", 2_500_000),),
        rolls=1,
        roll_widths_mm=(914,),
        media=("bond", "coated", "heavy_coated", "photo_satin"),
        mfp=True,
        seconds_per_m2=75.0,
        job_mix={
            "cad_lines": 0.5,
            "gis_map": 0.1,
            "poster": 0.12,
            "render": 0.06,
            "photo": 0.02,
            "scan": 0.1,
            "copy": 0.1,
        },
        fleet_weight=3.0,
    ),
    ModelSpec(
        name="HP DesignJet T1700 44-in Printer",
        family="HP DesignJet T1700 series",
        product_number="W6B55A",
        firmware_prefix="JIK",
        inks=_inks_730(),
        printheads=(
            PrintheadSpec(
                ("C", "M", "Y", "MK", "G", "PK"), "F9J81A", "HP 729 DesignJet Printhead", 6_000_000
            ),
        ),
        rolls=1,
        roll_widths_mm=(1118, 914),
        media=("bond", "coated", "heavy_coated", "photo_gloss", "photo_satin", "polypropylene"),
        mfp=False,
        seconds_per_m2=45.0,
        job_mix={"cad_lines": 0.35, "gis_map": 0.25, "poster": 0.15, "render": 0.2, "photo": 0.05},
        fleet_weight=2.0,
    ),
    ModelSpec(
        name="HP DesignJet T1700dr 44-in PostScript Printer",
        family="HP DesignJet T1700 series",
        product_number="1VD88A",
        firmware_prefix="JIK",
        inks=_inks_730(),
        printheads=(
            PrintheadSpec(
                ("C", "M", "Y", "MK", "G", "PK"), "F9J81A", "HP 729 DesignJet Printhead", 6_000_000
            ),
        ),
        rolls=2,
        roll_widths_mm=(1118, 914),
        media=("bond", "coated", "heavy_coated", "photo_gloss", "photo_satin", "polypropylene"),
        mfp=False,
        seconds_per_m2=45.0,
        job_mix={"cad_lines": 0.4, "gis_map": 0.3, "poster": 0.1, "render": 0.15, "photo": 0.05},
        fleet_weight=1.5,
    ),
    ModelSpec(
        name="HP DesignJet Z9+ 44-in PostScript Printer",
        family="HP DesignJet Z9+ series",
        product_number="W3Z72A",
        firmware_prefix="HBC",
        inks=(
            InkSpec("C", "P2V80A", "HP 746 300-ml Cyan Ink Cartridge", 300_000),
            InkSpec("M", "P2V81A", "HP 746 300-ml Magenta Ink Cartridge", 300_000),
            InkSpec("Y", "P2V79A", "HP 746 300-ml Yellow Ink Cartridge", 300_000),
            InkSpec("PK", "P2V82A", "HP 746 300-ml Photo Black Ink Cartridge", 300_000),
            InkSpec("MK", "P2V83A", "HP 746 300-ml Matte Black Ink Cartridge", 300_000),
            InkSpec("CR", "P2V84A", "HP 746 300-ml Chromatic Red Ink Cartridge", 300_000),
            InkSpec("G", "P2V86A", "HP 746 300-ml Gray Ink Cartridge", 300_000),
            InkSpec("LM", "P2V85A", "HP 746 300-ml Light Magenta Ink Cartridge", 300_000),
            InkSpec("LG", "P2V87A", "HP 746 300-ml Light Gray Ink Cartridge", 300_000),
        ),
        printheads=(
            PrintheadSpec(("C", "M"), "P2V25A", "HP 746 Printhead", 4_000_000),
            PrintheadSpec(("Y", "PK"), "P2V25A", "HP 746 Printhead", 4_000_000),
            PrintheadSpec(("MK", "CR"), "P2V25A", "HP 746 Printhead", 4_000_000),
            PrintheadSpec(("G", "LM"), "P2V25A", "HP 746 Printhead", 4_000_000),
            PrintheadSpec(("LG",), "P2V25A", "HP 746 Printhead", 4_000_000),
        ),
        rolls=2,
        roll_widths_mm=(1118, 914),
        media=("coated", "heavy_coated", "photo_gloss", "photo_satin", "polypropylene"),
        mfp=False,
        seconds_per_m2=110.0,
        job_mix={"poster": 0.35, "photo": 0.35, "render": 0.2, "gis_map": 0.1},
        fleet_weight=1.0,
    ),
    ModelSpec(
        name="HP PageWide XL 4200 40-in Multifunction Printer",
        family="HP PageWide XL 4200 series",
        product_number="6KD23A",
        firmware_prefix="LUN",
        inks=(
            InkSpec("C", "C1Q66A", "HP 843C 400-ml Cyan PageWide XL Ink Cartridge", 400_000),
            InkSpec("M", "C1Q67A", "HP 843C 400-ml Magenta PageWide XL Ink Cartridge", 400_000),
            InkSpec("Y", "C1Q68A", "HP 843C 400-ml Yellow PageWide XL Ink Cartridge", 400_000),
            InkSpec("K", "C1Q65A", "HP 843C 400-ml Black PageWide XL Ink Cartridge", 400_000),
        ),
        printheads=tuple(
            PrintheadSpec(("C", "M", "Y", "K"), "F9J52A", "HP 841 PageWide XL Printhead", 8_000_000)
            for _ in range(8)
        ),
        rolls=2,
        roll_widths_mm=(1016, 914),
        media=("bond", "coated", "heavy_coated", "polypropylene"),
        mfp=True,
        seconds_per_m2=9.0,
        job_mix={
            "cad_lines": 0.55,
            "gis_map": 0.15,
            "poster": 0.1,
            "render": 0.05,
            "scan": 0.07,
            "copy": 0.08,
        },
        fleet_weight=1.5,
    ),
)

PRINT_CATEGORIES = ("cad_lines", "gis_map", "poster", "photo", "render")


@dataclass(frozen=True)
class CategorySpec:
    media: tuple[str, ...]
    """Preferred media, best first."""
    page_lengths_mm: tuple[int, int]
    pages: tuple[int, int]
    coverage: tuple[float, float]
    """Mean pixel coverage of the printed area (0..1)."""
    mono_share: float
    qualities: tuple[str, ...]


CATEGORIES: dict[str, CategorySpec] = {
    "cad_lines": CategorySpec(("bond", "coated"), (420, 1189), (1, 12), (0.02, 0.12), 0.55,
                              ("fast", "normal", "normal")),
    "gis_map": CategorySpec(("coated", "heavy_coated", "bond"), (600, 2000), (1, 3),
                            (0.35, 0.8), 0.0, ("normal", "normal", "best")),
    "poster": CategorySpec(("heavy_coated", "photo_satin", "polypropylene", "coated"),
                           (700, 1500), (1, 4), (0.45, 0.9), 0.0, ("normal", "best")),
    "photo": CategorySpec(("photo_gloss", "photo_satin", "heavy_coated"), (400, 1200), (1, 3),
                          (0.7, 1.0), 0.05, ("best",)),
    "render": CategorySpec(("coated", "heavy_coated", "photo_satin"), (600, 1500), (1, 2),
                           (0.5, 0.95), 0.0, ("normal", "best")),
}  # fmt: skip
