"""Price plan files: the examples stay valid, numbers are exact, errors are one line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fleetmeter.billing import BillingPeriod, Meter, PlanError, TierMode, load_plan, parse_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plans"

MINIMAL = 'name = "P"\ncurrency = "EUR"\n'


def component(body: str) -> str:
    return MINIMAL + '[[components]]\nname = "C"\n' + body


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_plans_are_valid(path: Path) -> None:
    plan = load_plan(path)
    assert plan.components


def test_there_are_example_plans() -> None:
    assert len(list(EXAMPLES.glob("*.toml"))) >= 3


def test_defaults_and_exact_numbers() -> None:
    plan = parse_plan(component('meter = "pages"\nunit_price = 0.1\nincluded = 2.50\n'))
    (c,) = plan.components
    assert plan.period is BillingPeriod.MONTHLY
    assert c.meter is Meter.IMPRESSIONS  # "pages" is an alias
    assert c.display_unit == "page"
    # A TOML float is read as the decimal it spells, not as the binary float 0.1000000000000000055…
    assert c.unit_price == Decimal("0.1")
    assert str(c.unit_price) == "0.1"
    assert c.included == Decimal("2.50")


def test_tiers_parse() -> None:
    plan = parse_plan(
        component(
            'meter = "media_area"\nunit = "ft2"\ntier_mode = "volume"\n'
            'tiers = [{ up_to = 500, unit_price = "0.30" }, { unit_price = "0.20" }]\n'
        )
    )
    (c,) = plan.components
    assert c.tier_mode is TierMode.VOLUME
    assert c.tiers is not None and [t.up_to for t in c.tiers] == [Decimal(500), None]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            component(
                'meter = "pages"\ntier_mode = "graduated"\ntiers = [{ up_to = 10, unit_price = 1 },'
                " { up_to = 20, unit_price = 1 }, { up_to = 30, unit_price = 1 }]\n"
            ),
            "test.toml: components[0].tiers[2].up_to: the last tier is open-ended: omit up_to",
        ),
        (
            component(
                'meter = "pages"\ntier_mode = "graduated"\ntiers = [{ up_to = 10, unit_price = 1 },'
                " { up_to = 10, unit_price = 1 }, { unit_price = 1 }]\n"
            ),
            "test.toml: components[0].tiers[1].up_to: must be greater than the tier before (10)",
        ),
        (
            component(
                'meter = "pages"\ntier_mode = "graduated"\n'
                "tiers = [{ unit_price = 1 }, { unit_price = 1 }]\n"
            ),
            "test.toml: components[0].tiers[0].up_to: required on every tier but the last",
        ),
        (
            component('meter = "pages"\ntier_mode = "graduated"\ntiers = []\n'),
            "test.toml: components[0].tiers: give at least one tier",
        ),
        (
            component('meter = "pages"\ntiers = [{ unit_price = 1 }]\n'),
            "test.toml: components[0].tier_mode: required with tiers: 'graduated' or 'volume'",
        ),
        (
            component('meter = "pages"\n'),
            "test.toml: components[0].unit_price: give either unit_price or tiers (exactly one)",
        ),
        (
            component('meter = "pages"\nunit_price = "-0.01"\n'),
            "test.toml: components[0].unit_price: Input should be greater than or equal to 0",
        ),
        (
            component('meter = "pages"\nunit_price = "cheap"\n'),
            "test.toml: components[0].unit_price: Input should be a valid decimal",
        ),
        (
            component('meter = "pages"\nunit_price = inf\n'),
            "test.toml: components[0].unit_price: Input should be a finite number",
        ),
        (
            component('meter = "media_area"\nunit = "m3"\nunit_price = 1\n'),
            "test.toml: components[0].unit: 'm3' is not a unit of media_area: use m2, cm2, ft2",
        ),
        (
            component('meter = "media_area"\ncolor = "C"\nunit_price = 1\n'),
            "test.toml: components[0].color: only components with meter ink take color",
        ),
        (
            component('meter = "pages"\nunit_pric = 1\n'),
            "test.toml: components[0].unit_pric: unknown key",
        ),
        (
            component('meter = "toner"\nunit_price = 1\n'),
            "test.toml: components[0].meter: Input should be 'media_area', 'ink', 'impressions',"
            " 'scan_area', 'jobs', 'material_3d', 'build_hours', 'material_3d_volume',"
            " 'builds' or 'build_volume'",
        ),
        (
            'name = "P"\ncurrency = "EUX"\n',
            "test.toml: currency: 'EUX' is not an ISO 4217 currency code (e.g. 'EUR', 'USD')",
        ),
        ('currency = "EUR"\n', "test.toml: name: required"),
        (
            MINIMAL + 'fixed_fee = "49.005"\n',
            "test.toml: fixed_fee: 49.005 has more decimals than EUR has (2)",
        ),
        (
            'name = "P"\ncurrency = "JPY"\nminimum_commitment = "100.5"\n',
            "test.toml: minimum_commitment: 100.5 has more decimals than JPY has (0)",
        ),
        (
            MINIMAL + 'period = "weekly"\n',
            "test.toml: period: Input should be 'monthly', 'quarterly' or 'yearly'",
        ),
        (
            component(
                'meter = "pages"\nunit_price = 1\n[[components]]\nname = "C"\n'
                'meter = "jobs"\nunit_price = 1\n'
            ),
            "test.toml: components[1].name: 'C' is already used by components[0]",
        ),
        (
            component(
                'meter = "ink"\nunit_price = 1\n[[components]]\nname = "D"\n'
                'meter = "ink"\nunit_price = 2\n'
            ),
            "test.toml: components[1].meter: same meter and filter as components[0]",
        ),
        ('name = "P"\ncurrency = \n', None),  # TOML syntax error: checked below
    ],
)
def test_errors_are_one_line_naming_the_key(toml: str, expected: str | None) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(toml, source="test.toml")
    message = str(caught.value)
    assert "\n" not in message
    if expected is None:
        assert message.startswith("test.toml: not valid TOML: ")
    else:
        assert message == expected


def test_more_errors_are_counted_not_listed() -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan('currency = "EUR"\nfixed_fee = -1\n', source="p.toml")
    assert str(caught.value) == "p.toml: name: required (and 1 more)"


def test_load_plan_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"missing\.toml: cannot read"):
        load_plan(tmp_path / "missing.toml")
