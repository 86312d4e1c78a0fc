"""A small, realistic fleet for the web-page tests, the browser tests and the screenshots.

Three customers with sites, large-format printers in every state worth seeing (low ink, a
worn printhead, non-vendor ink, an expired cartridge, offline, an error with open alerts),
two 3D printers with builds and materials, thirty days of counter readings and jobs, all
stored through the real ingest service. ``HOSTILE`` strings (script payloads) sit in a job
name, an alert text and submitter fields: pages must show them as text.
"""

from __future__ import annotations

import random
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.portal.services import ingest, tenancy
from fleetmeter.portal.store.models import Collector, Device, Site

PASSWORD = "correct horse battery"
# Would set a flag / retitle the page if any of it ever ran.
SCRIPT_NAME = "<script>window.__pwned = 1; document.title = 'PWNED'</script>Plan.pdf"
IMG_NAME = "<img src=x onerror=\"window.__pwned = 2; document.title = 'PWNED'\">.dwg"
FORMULA_NAME = '=HYPERLINK("http://evil.example","click")'
HOSTILE = (SCRIPT_NAME, IMG_NAME)


@dataclass(frozen=True)
class DeviceSpec:
    serial: str
    model: str
    customer: str
    site: str | None
    driver: str = "ledm"
    device_class: str = "printer"
    state: wire.EngineState = wire.EngineState.IDLE
    levels: dict[str, int] = field(default_factory=lambda: {"C": 64, "M": 58, "Y": 71, "K": 44})
    head_health: int = 86
    non_vendor: str | None = None  # a colour with a non-vendor cartridge
    expired: str | None = None  # a colour whose cartridge expired
    silent_hours: float = 0.1  # hours since the last contact
    alerts: tuple[tuple[str, wire.AlertSeverity, str], ...] = ()
    jobs_per_day: int = 6


SPECS = (
    DeviceSpec("CN81J4A01K", "DesignJet T830", "Contoso Architects", "Berlin HQ"),
    DeviceSpec(
        "CN81J4A02K",
        "DesignJet T830",
        "Contoso Architects",
        "Berlin HQ",
        levels={"C": 9, "M": 52, "Y": 4, "K": 61},
        state=wire.EngineState.PRINTING,
    ),
    DeviceSpec(
        "SG94M1100P",
        "DesignJet Z9+ PostScript",
        "Contoso Architects",
        "Hamburg",
        head_health=18,
        non_vendor="PK",
        levels={"C": 77, "M": 80, "Y": 68, "PK": 35, "MK": 50, "G": 90},
    ),
    DeviceSpec(
        "CN0BX7300W",
        "PageWide XL 5200",
        "Fabrikam Engineering",
        "Munich plant",
        state=wire.EngineState.ERROR,
        alerts=(
            ("paper_jam", wire.AlertSeverity.ERROR, "Paper jam in roll 2 — open the drawer"),
            ("printhead_temp", wire.AlertSeverity.WARNING, "Printhead 3 temperature high"),
        ),
        jobs_per_day=14,
    ),
    DeviceSpec(
        "CN0BX7301W",
        "PageWide XL 5200",
        "Fabrikam Engineering",
        "Munich plant",
        silent_hours=30,
        jobs_per_day=10,
    ),
    DeviceSpec(
        "TH6AL2210F",
        "OfficeJet Pro 9022e",
        "Fabrikam Engineering",
        None,
        driver="ipp",
        expired="K",
        alerts=(("toner_low", wire.AlertSeverity.INFO, "Black cartridge: order soon"),),
        jobs_per_day=3,
    ),
    DeviceSpec(
        "MK4-10442",
        "Original Prusa MK4",
        "Northwind 3D Lab",
        "Workshop",
        driver="octoprint",
        device_class="printer3d",
        state=wire.EngineState.PRINTING,
        levels={},
        jobs_per_day=2,
    ),
    DeviceSpec(
        "VORON-0231",
        "Voron 2.4 (Klipper)",
        "Northwind 3D Lab",
        "Workshop",
        driver="moonraker",
        device_class="printer3d",
        levels={},
        jobs_per_day=2,
    ),
)


@dataclass(frozen=True)
class SampleFleet:
    reseller_id: uuid.UUID
    email: str
    password: str
    customers: dict[str, uuid.UUID]
    devices: dict[str, uuid.UUID]  # by serial number
    jobs: int
    hostile_device: str  # serial of the device whose jobs carry HOSTILE names


def seed_sample_fleet(
    factory: sessionmaker[Session],
    *,
    now: datetime,
    reseller: str = "Acme Print Services",
    days: int = 30,
    seed: int = 6,
) -> SampleFleet:
    """Store the sample fleet for a new reseller, its data ending at ``now``."""
    rng = random.Random(seed)
    email = f"service@{reseller.split()[0].lower()}.example"
    with factory() as session:
        ids = tenancy.create_tenant(
            session,
            reseller_name=reseller,
            customer_name=SPECS[0].customer,
            admin_email=email,
            admin_password=PASSWORD,
        )
        reseller_row = tenancy.find_reseller(session, name=reseller)
        customers: dict[str, uuid.UUID] = {}
        senders: dict[str, ingest.Sender] = {}
        for spec in SPECS:
            if spec.customer in customers:
                continue
            customer = tenancy.get_or_create_customer(
                session, reseller=reseller_row, name=spec.customer
            )
            session.flush()
            new = tenancy.add_collector(session, reseller=reseller_row, customer=customer)
            collector = session.get(Collector, new.collector_id)
            assert collector is not None
            collector.name = f"{spec.customer.split()[0]} site server"
            collector.last_seen_at = now - timedelta(minutes=3)
            customers[spec.customer] = customer.id
            senders[spec.customer] = ingest.Sender.of_collector(collector)
        session.commit()
    assert ids.reseller_id == reseller_row.id

    jobs = 0
    hostile_device = SPECS[0].serial
    for spec in SPECS:
        reports = _history(spec, now=now, days=days, rng=rng, hostile=spec.serial == hostile_device)
        jobs += sum(len(r.jobs) for r in reports)
        for start in range(0, len(reports), 10):
            batch = wire.Batch(
                batch_id=uuid.uuid4(),
                created_at=now,
                sender="sample fleet",
                reports=reports[start : start + 10],
            )
            with factory() as session:
                ingest.ingest_batch(session, batch=batch, sender=senders[spec.customer])

    with factory() as session:
        devices = {
            serial: device_id
            for serial, device_id in session.execute(
                select(Device.serial_number, Device.id).where(Device.reseller_id == reseller_row.id)
            )
        }
        # No API assigns sites yet (devices arrive through a customer's collector): the
        # sample places them directly, as a future "edit device" form would.
        sites: dict[tuple[str, str], uuid.UUID] = {}
        for spec in SPECS:
            if spec.site is None:
                continue
            key = (spec.customer, spec.site)
            if key not in sites:
                site = Site(
                    reseller_id=reseller_row.id,
                    customer_id=customers[spec.customer],
                    name=spec.site,
                )
                session.add(site)
                session.flush()
                sites[key] = site.id
            session.execute(
                update(Device)
                .where(Device.reseller_id == reseller_row.id, Device.id == devices[spec.serial])
                .values(site_id=sites[key])
            )
        session.commit()
    return SampleFleet(
        reseller_id=reseller_row.id,
        email=email,
        password=PASSWORD,
        customers=customers,
        devices=devices,
        jobs=jobs,
        hostile_device=hostile_device,
    )


def _history(
    spec: DeviceSpec, *, now: datetime, days: int, rng: random.Random, hostile: bool
) -> list[wire.DeviceReport]:
    """One report a day for ``days`` days (the newest ``silent_hours`` ago) with that day's
    jobs and the lifetime counters so far; status and alerts on the newest only."""
    last = now - timedelta(hours=spec.silent_hours)
    impressions = rng.randint(20_000, 90_000)
    ink = rng.randint(2_000_000, 9_000_000)
    area = rng.randint(400_000_000, 2_000_000_000)
    sequence = rng.randint(1000, 5000)
    reports = []
    for back in range(days - 1, -1, -1):
        at = last - timedelta(days=back)
        jobs = []
        # Quieter weekends, busier weekdays: the chart then shows a working week.
        count = spec.jobs_per_day if at.weekday() < 5 else max(spec.jobs_per_day // 4, 0)
        count = rng.randint(max(count - 2, 0), count + 2)
        if hostile and back == 0:
            count = max(count, len(HOSTILE) + 1)  # room for every hostile name
        for i in range(count):
            sequence += 1
            pages = rng.randint(1, 12)
            area_job = pages * rng.choice((594 * 841, 841 * 1189, 420 * 594, 210 * 297))
            ink_job = {c: rng.randint(50, 2400) for c in spec.levels}
            name = rng.choice(
                ("Floor plan L{n}.pdf", "Elevation {n}.dwg", "Site survey {n}.pdf", "Poster {n}")
                if spec.device_class == "printer"
                else ("Bracket_v{n}.gcode", "Housing_{n}.gcode", "Gear_set_{n}.gcode")
            ).format(n=rng.randint(1, 40))
            if hostile and back == 0 and i < len(HOSTILE):
                name = HOSTILE[i]
            elif hostile and back == 0 and i == len(HOSTILE):
                name = FORMULA_NAME
            jobs.append(
                wire.JobRecord(
                    job_uuid=uuid.uuid4(),
                    sequence_number=sequence,
                    name=name,
                    completed_at=at - timedelta(minutes=20 * (i + 1)),
                    pages=pages,
                    ink_ul=ink_job,
                    media_type=rng.choice(("bond", "coated", "photo_gloss")),
                    media_area_mm2=area_job,
                    printed_area_mm2=area_job * 8 // 10,
                    application_category=rng.choice(("cad", "gis", "poster", "office")),
                    duration_s=rng.randint(40, 900),
                    submitter=wire.Submitter(
                        project=rng.choice(("P-1042 Hospital", "P-0977 School", "Tender")),
                        account=rng.choice(("ARCH-01", "ENG-07", "MKT-02")),
                        user=rng.choice(("j.meyer", "a.novak", "s.okafor", "l.rossi")),
                        application="AutoCAD" if spec.device_class == "printer" else "PrusaSlicer",
                    ),
                )
            )
            impressions += pages
            ink += sum(ink_job.values())
            area += area_job
        newest = back == 0
        reports.append(
            wire.DeviceReport(
                collected_at=at,
                device=wire.DeviceIdentity(
                    vendor="Prusa"
                    if spec.driver == "octoprint"
                    else ("Voron" if spec.driver == "moonraker" else "HP"),
                    serial_number=spec.serial,
                    product_name=spec.model,
                    product_number=None if spec.device_class != "printer" else "F9A30A",
                    firmware_version="2025.11.1",
                    driver=spec.driver,
                    device_class=spec.device_class,  # type: ignore[arg-type]
                    address=f"10.{len(spec.customer)}.0.{20 + SPECS.index(spec)}",
                ),
                status=_status(spec, now)
                if newest and spec.device_class == "printer"
                else (wire.DeviceStatus(engine_state=spec.state) if newest else None),
                usage=wire.LifetimeUsage(
                    impressions=impressions,
                    total_ink_ul=ink if spec.levels else None,
                    total_media_area_mm2=area if spec.device_class == "printer" else None,
                    jobs=sequence,
                ),
                jobs=jobs,
                alerts=_alerts(spec, at, newest),
                additive=_additive(spec, now)
                if newest and spec.device_class != "printer"
                else None,
            )
        )
    return reports


def _status(spec: DeviceSpec, now: datetime) -> wire.DeviceStatus:
    cartridges = []
    for colour, level in spec.levels.items():
        status = wire.SupplyState.OK
        if level < 10:
            status = wire.SupplyState.VERY_LOW
        elif level < 20:
            status = wire.SupplyState.LOW
        expired = colour == spec.expired
        cartridges.append(
            wire.Cartridge(
                color=colour,
                level_percent=level,
                status=wire.SupplyState.EXPIRED if expired else status,
                product_number=f"P2V{60 + len(colour)}A",
                serial_number=f"CRT{zlib.crc32(f'{spec.serial}/{colour}'.encode()) % 10**8:08d}",
                manufacturer="HP",
                capacity_ul=130_000,
                ink_consumed_ul=130_000 * (100 - level) // 100,
                non_vendor=colour == spec.non_vendor,
                non_vendor_ink_consumed_ul=42_000 if colour == spec.non_vendor else None,
                installed_on=(now - timedelta(days=120)).date(),
                expires_on=(
                    now - timedelta(days=3) if expired else now + timedelta(days=400)
                ).date(),
            )
        )
    heads = [
        wire.Printhead(
            slot=i,
            colors=colours,
            health_percent=spec.head_health if i == 0 else 91,
            status=wire.SupplyState.LOW
            if i == 0 and spec.head_health < 30
            else wire.SupplyState.OK,
            product_number="3ED58A",
            non_vendor_ink=spec.non_vendor is not None and i == 0,
        )
        for i, colours in enumerate((["C", "M"], ["Y", "K"]))
    ]
    return wire.DeviceStatus(
        engine_state=spec.state,
        cartridges=cartridges,
        printheads=heads,
        media_sources=[
            wire.MediaSource(
                name="roll1",
                state="ready",
                media_type="bond",
                width_mm=914,
                remaining_length_mm=38_500,
            ),
            wire.MediaSource(name="roll2", state="empty" if spec.alerts else "ready", width_mm=610),
        ],
    )


def _alerts(spec: DeviceSpec, at: datetime, newest: bool) -> list[wire.Alert]:
    out = []
    if newest:
        out += [
            wire.Alert(code=code, severity=sev, text=text, first_seen=at - timedelta(hours=2))
            for code, sev, text in spec.alerts
        ]
    if spec.serial == SPECS[0].serial and newest:
        # A cleared alert whose text is hostile: the history shows it as text.
        out.append(
            wire.Alert(
                code="door_open",
                severity=wire.AlertSeverity.WARNING,
                text=IMG_NAME,
                first_seen=at - timedelta(days=3),
                cleared_at=at - timedelta(days=3, hours=-1),
            )
        )
    return out


def _additive(spec: DeviceSpec, now: datetime) -> wire.AdditiveStatus:
    material = "PETG Galaxy Black" if spec.driver == "octoprint" else "ASA Natural"
    running = spec.state == wire.EngineState.PRINTING
    return wire.AdditiveStatus(
        state=spec.state,
        build_job=wire.BuildJob(
            id="job-8841",
            name="Bracket_v7.gcode",
            material=material,
            layers_total=412,
            layers_done=173,
            progress_percent=42,
            started_at=now - timedelta(hours=3),
            estimated_end=now + timedelta(hours=4),
        )
        if running
        else None,
        recent_builds=[
            wire.BuildJob(
                id=f"job-{8840 - i}",
                name=name,
                material=material,
                outcome=outcome,
                layers_total=layers,
                build_height_mm=layers // 5,
                duration_s=hours * 3600,
                material_used_g=grams,
                started_at=now - timedelta(days=i + 1),
            )
            for i, (name, outcome, layers, hours, grams) in enumerate(
                (
                    ("Housing_top.gcode", "completed", 310, 6, 84),
                    ("Gear_set.gcode", "failed", 95, 1, 12),
                    ("Fixture_plate.gcode", "completed", 520, 11, 212),
                )
            )
        ],
        materials=[
            wire.Material(name=material, kind="filament", remaining_g=640, consumed_g=2_310),
        ],
        temperatures_c={"nozzle": 244.6 if running else 24.1, "bed": 80.0 if running else 22.5},
    )
