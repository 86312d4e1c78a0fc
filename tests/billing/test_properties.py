"""Properties of rating, checked on generated plans and jobs (hypothesis).

- the statement does not depend on the order of jobs nor on how often a job is repeated;
- the line amounts add up to the total, each rounded to the currency's minor unit;
- rating is deterministic;
- an invalid plan is refused with one line naming the key.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetmeter.billing import (
    PeriodUsage,
    PlanError,
    PricePlan,
    Statement,
    plan_from_dict,
    rate,
    usage_from_jobs,
)
from fleetmeter.billing.currency import minor_unit
from fleetmeter.billing.period import Period
from fleetmeter.wire import JobKind, JobRecord, JobStatus

# No example database (a failure prints the example to reproduce it), no deadline:
# the first example pays for imports and would flake on a loaded CI machine.
PROPERTY = settings(
    database=None, deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)

MARCH = Period.month(2026, 3, timezone="Europe/Berlin")
MEDIA = ["bond", "coated", "photo"]
CATEGORIES = ["cad_lines", "poster"]
COLOURS = ["C", "M", "Y", "K"]


@st.composite
def jobs(draw: st.DrawFn) -> JobRecord:
    kind = draw(st.sampled_from(list(JobKind)))
    fields: dict[str, Any] = {
        "kind": kind,
        "job_uuid": draw(st.uuids()),
        "sequence_number": draw(st.integers(0, 10_000)),
        # a few days either side of March, so some jobs fall outside the period
        "completed_at": datetime(2026, 2, 27, tzinfo=UTC)
        + timedelta(minutes=draw(st.integers(0, 36 * 24 * 60))),
        "status": draw(st.sampled_from(list(JobStatus))),
        "pages": draw(st.integers(0, 500)),
        "media_type": draw(st.none() | st.sampled_from(MEDIA)),
        "application_category": draw(st.none() | st.sampled_from(CATEGORIES)),
        "media_area_mm2": draw(st.integers(0, 5_000_000)),
        "ink_ul": draw(st.dictionaries(st.sampled_from(COLOURS), st.integers(0, 50_000))),
        "scan_area_mm2": draw(st.integers(0, 2_000_000)) if kind is not JobKind.PRINT else 0,
        "print_time_s": draw(st.none() | st.integers(0, 20_000)),
    }
    if draw(st.booleans()):
        fields["filament_g"] = draw(st.integers(0, 2_000))
        fields["material"] = draw(st.sampled_from(["PLA", "PETG"]))
    return JobRecord.model_validate(fields)


money = st.decimals(min_value=0, max_value=500, places=2)
price = st.decimals(min_value=0, max_value=5, places=4)

METERS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("media_area", {}, ["m2", "ft2", "cm2"]),
    ("media_area", {"media_type": "bond"}, ["m2"]),
    ("media_area", {"application_category": "poster"}, ["m2"]),
    ("ink", {}, ["mL", "L", "uL"]),
    ("ink", {"color": "K"}, ["mL"]),
    ("pages", {}, ["page"]),
    ("scan_area", {"job_kind": "copy"}, ["m2"]),
    ("jobs", {"job_kind": "print"}, ["job"]),
    ("material_3d", {"material": "PLA"}, ["kg", "g"]),
    ("build_hours", {}, ["hour", "minute"]),
]


@st.composite
def components(draw: st.DrawFn, index: int) -> dict[str, Any]:
    meter, filters, units = METERS[index]
    out: dict[str, Any] = {"name": f"c{index}", "meter": meter, **filters}
    out["unit"] = draw(st.sampled_from(units))
    if draw(st.booleans()):
        out["included"] = draw(st.decimals(min_value=0, max_value=100, places=3))
    if draw(st.booleans()):
        out["minimum_charge"] = draw(money)
    if draw(st.booleans()):
        out["unit_price"] = draw(price)
    else:
        bounds = draw(
            st.lists(
                st.decimals(min_value=Decimal("0.001"), max_value=1000, places=3),
                min_size=0,
                max_size=3,
                unique=True,
            )
        )
        out["tier_mode"] = draw(st.sampled_from(["graduated", "volume"]))
        out["tiers"] = [{"up_to": b, "unit_price": draw(price)} for b in sorted(bounds)]
        out["tiers"].append({"unit_price": draw(price)})
    return out


@st.composite
def plans(draw: st.DrawFn) -> PricePlan:
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD"]))
    places = minor_unit(currency)
    plan_money = st.decimals(min_value=0, max_value=500, places=places)
    indexes = draw(st.lists(st.integers(0, len(METERS) - 1), unique=True, max_size=6))
    data: dict[str, Any] = {
        "name": "generated",
        "currency": currency,
        "components": [draw(components(i)) for i in indexes],
    }
    for c in data["components"]:
        if "minimum_charge" in c:
            c["minimum_charge"] = draw(plan_money)
    if draw(st.booleans()):
        data["fixed_fee"] = draw(plan_money)
    if draw(st.booleans()):
        data["minimum_commitment"] = draw(plan_money)
    return plan_from_dict(data)


windows = st.tuples(
    st.none() | st.dates(date(2026, 2, 20), date(2026, 3, 31)),
    st.none() | st.dates(date(2026, 3, 1), date(2026, 4, 10)),
).filter(lambda w: w[0] is None or w[1] is None or w[0] < w[1])


def usage(
    per_device: dict[str, list[JobRecord]], window: dict[str, tuple[date | None, date | None]]
) -> PeriodUsage:
    return PeriodUsage(
        devices=tuple(
            usage_from_jobs(
                js,
                device=name,
                period=MARCH,
                device_class="printer3d" if name == "3d" else "printer",
                added_on=window[name][0],
                removed_on=window[name][1],
            )
            for name, js in per_device.items()
        )
    )


@PROPERTY
@given(
    plan=plans(),
    jobs_2d=st.lists(jobs(), max_size=25, unique_by=lambda j: j.job_uuid),
    jobs_3d=st.lists(jobs(), max_size=10, unique_by=lambda j: j.job_uuid),
    window_2d=windows,
    window_3d=windows,
    data=st.data(),
)
def test_order_and_repetition_of_jobs_do_not_change_the_statement(
    plan: PricePlan,
    jobs_2d: list[JobRecord],
    jobs_3d: list[JobRecord],
    window_2d: tuple[date | None, date | None],
    window_3d: tuple[date | None, date | None],
    data: st.DataObject,
) -> None:
    windows_ = {"2d": window_2d, "3d": window_3d}
    once = rate(plan, usage({"2d": jobs_2d, "3d": jobs_3d}, windows_), period=MARCH)

    def resent(js: list[JobRecord]) -> list[JobRecord]:
        # re-sent batches: some jobs again (as equal copies), all in another order
        again = data.draw(st.lists(st.sampled_from(js), max_size=10)) if js else []
        copies = [j.model_copy(deep=True) for j in again]
        return data.draw(st.permutations(js + copies))

    # device order in the usage does not matter either
    twice = rate(
        plan, usage({"3d": resent(jobs_3d), "2d": resent(jobs_2d)}, windows_), period=MARCH
    )
    assert twice == once
    assert twice.model_dump_json() == once.model_dump_json()


@PROPERTY
@given(plan=plans(), js=st.lists(jobs(), max_size=30, unique_by=lambda j: j.job_uuid))
def test_lines_add_up_to_the_total_in_minor_units(plan: PricePlan, js: list[JobRecord]) -> None:
    s = rate(plan, usage({"d": js}, {"d": (None, None)}), period=MARCH)
    places = minor_unit(plan.currency)
    assert s.total == sum((line.amount for line in s.lines), Decimal(0))
    for amount in [s.total, *(line.amount for line in s.lines)]:
        assert amount >= 0
        assert amount.as_tuple().exponent == -places  # exactly the minor unit's decimals
    usage_lines = [line for line in s.lines if line.kind == "usage"]
    assert [line.label for line in usage_lines] == [c.name for c in plan.components]
    for line in usage_lines:
        assert line.billable is not None and line.billable >= 0
        if line.minimum is not None:
            assert line.amount >= line.minimum


@PROPERTY
@given(plan=plans(), js=st.lists(jobs(), max_size=20, unique_by=lambda j: j.job_uuid))
def test_rating_is_deterministic(plan: PricePlan, js: list[JobRecord]) -> None:
    u = usage({"d": js}, {"d": (date(2026, 3, 4), None)})
    first: Statement = rate(plan, u, period=MARCH)
    assert rate(plan, u, period=MARCH).model_dump_json() == first.model_dump_json()
    # and the same plan read back from its own dump rates the same
    again = plan_from_dict(plan.model_dump(mode="json", exclude_none=True))
    assert rate(again, u, period=MARCH) == first


# Each breaks one key of a valid plan; the error must be one line that names that key.
BREAKAGES: list[tuple[str, Any]] = [
    ("components[0].unit_price", lambda c: c.update(unit_price="-1")),
    ("components[0].unit_price", lambda c: c.update(unit_price="lots")),
    ("components[0].included", lambda c: c.update(included=-5)),
    ("components[0].unit", lambda c: c.update(unit="furlong")),
    ("components[0].meter", lambda c: c.update(meter="toner")),
    ("components[0].colour", lambda c: c.update(colour="K")),
    ("components[0].minimum_charge", lambda c: c.update(minimum_charge="0.00001")),
    ("components[0].tier_mode", lambda c: c.update(tiers=[{"unit_price": 1}], unit_price=None)),
    (
        "components[0].tiers[1].up_to",
        lambda c: c.update(
            unit_price=None,
            tier_mode="volume",
            tiers=[{"up_to": 5, "unit_price": 1}, {"up_to": 3, "unit_price": 1}, {"unit_price": 1}],
        ),
    ),
]


@PROPERTY
@given(plan=plans(), breakage=st.sampled_from(BREAKAGES), name=st.text(min_size=1, max_size=20))
def test_invalid_plans_fail_with_one_line_naming_the_key(
    plan: PricePlan, breakage: tuple[str, Any], name: str
) -> None:
    key, breaks = breakage
    data = plan.model_dump(mode="json", exclude_none=True)
    data["components"].insert(0, {"name": "broken", "meter": "pages", "unit_price": "1"})
    breaks(data["components"][0])
    data["components"][0] = {k: v for k, v in data["components"][0].items() if v is not None}
    source = f"plans/{name.replace(chr(10), ' ').replace(chr(13), ' ')}.toml"
    try:
        plan_from_dict(data, source=source)
    except PlanError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"accepted a plan with a broken {key}")
    assert "\n" not in message
    assert message.startswith(f"{source}: {key}: "), message
