"""HP-EWS-style LEDM documents (UTF-8 XML bytes) for one virtual printer.

Document names, root elements and namespaces are those of real HP captures
(``../shared/fixtures/ledm/``); ``JobAccountingDyn.xml`` is FleetMeter's own, specified in
``docs/architecture.md``. Every text node is XML-escaped: job names are untrusted.

Where real captures have no element for what a large-format printer reports, the simulator
adds elements in the document's own namespaces (exact µL / mm / mm² values survive the
decimal representation). Prefixes: ``dd`` = ``…/con/dictionaries/1.0/``, ``dd2`` =
``…/con/dictionaries/2008/10/10``.

``ProductUsageDyn.xml`` (every value equals the device's lifetime counters)::

    pudyn:ProductUsageDyn
      pudyn:PrinterSubunit
        dd:TotalImpressions            impressions
        dd:MonochromeImpressions       mono_impressions
        dd:ColorImpressions            color_impressions
        dd:TotalJobs                   jobs (print + scan + copy records)
        dd:TotalArea                   total_media_area_mm2: dd:ValueFloat + dd:Unit
                                       squareMeters, 6 decimals (value = mm2 / 1e6)
        dd:TotalLength                 total_media_length_mm: dd:ValueFloat + dd:Unit meters,
                                       3 decimals (value = mm / 1000)
        pudyn:UsageByMarkingAgent      all colours (as in real captures, no dd:MarkerColor)
          dd2:CumulativeMarkingAgentUsed    total_ink_ul: dd:ValueFloat + dd:Unit milliliters,
                                            3 decimals (value = µL / 1000)
          dd2:CumulativeHPMarkingAgentUsed  same value (all ink is vendor ink)
        pudyn:UsageByMarkingAgent      one per colour
          dd:MarkerColor                    colour code: C, M, Y, K, MK, PK, G, LG, CR, LM
          dd2:CumulativeMarkingAgentUsed    ml with 3 decimals (= ink.<c>.total_ul / 1000)
          dd2:CumulativeHPMarkingAgentUsed  ml with 3 decimals (= ink.<c>.vendor_ul / 1000)
          dd2:CumulativeConsumableCount     cartridges inserted (= ink.<c>.insertions)
        pudyn:UsageByMedia             one per supported media type
          dd:MediaType                      bond, coated, heavy_coated, photo_gloss,
                                            photo_satin or polypropylene
          dd:TotalImpressions               media.<t>.impressions
          dd:TotalArea                      squareMeters, 6 decimals (= media.<t>.area_mm2 / 1e6)
          dd:TotalLength                    meters, 3 decimals (= media.<t>.length_mm / 1000)
      pudyn:ScanApplicationSubunit     MFP models only
        dd:TotalJobs                   scan.scan_jobs
        dd:TotalArea                   squareMeters (= scan.scanned_area_mm2 / 1e6)
      pudyn:CopyApplicationSubunit     MFP models only
        dd:TotalJobs                   scan.copy_jobs
        dd:TotalArea                   squareMeters (= scan.copied_area_mm2 / 1e6)

Other additions: printhead ``ccdyn:ConsumableInfo`` carries its health in
``dd:ConsumablePercentageLevelRemaining`` and its colours as concatenated codes in
``dd:ConsumableLabelCode`` (e.g. ``CMYMK``) plus one ``dd:MarkerColor`` per colour;
rolls are ``mhdyn:InputRoll`` (same children as a real ``mhdyn:InputTray``, ``dd:TrayType``
``roll``) with ``mhdyn:MediaWidth`` and ``mhdyn:RemainingLength`` (dd:ValueFloat + dd:Unit
millimeters); ``MediaDyn.xml`` lists ``mediadyn2:SupportedMediaTypes/mediadyn2:MediaTypeInfo``
with ``dd:MediaType`` and one ``mediadyn2:LocalizedName xml:lang="…"`` per language; alerts
in ``psdyn:AlertTable`` carry ``dd:TimeStamp`` (when raised).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, date, datetime

from fleetmeter.simulator.models import MEDIA
from fleetmeter.simulator.printer import SimJob, VirtualPrinter
from fleetmeter.wire import EngineState

DD = "http://www.hp.com/schemas/imaging/con/dictionaries/1.0/"
DD2 = "http://www.hp.com/schemas/imaging/con/dictionaries/2008/10/10"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
LEDM = "http://www.hp.com/schemas/imaging/con/ledm/2007/09/21"
_LEDM = "http://www.hp.com/schemas/imaging/con/ledm"
PRDCFGDYN = f"{_LEDM}/productconfigdyn/2007/11/05"
PRDCFGDYN2 = f"{_LEDM}/productconfigdyn/2009/03/16"
PSDYN = f"{_LEDM}/productstatusdyn/2007/10/31"
PSCAT = f"{_LEDM}/productstatuscategories/2007/10/31"
LOCID = f"{_LEDM}/localizationids/2007/10/31"
AD = f"{_LEDM}/alertdetails/2007/10/31"
CCDYN = f"{_LEDM}/consumableconfigdyn/2007/11/19"
PUDYN = f"{_LEDM}/productusagedyn/2007/12/11"
MHDYN = f"{_LEDM}/mediahandlingdyn/2007/11/21"
MEDIADYN = f"{_LEDM}/mediadyn/2007/11/28"
MEDIADYN2 = f"{_LEDM}/mediadyn/2009/05/21"
PLDYN = f"{_LEDM}/productlogsdyn/2008/01/16"
JADYN = "http://www.fleetmeter.org/schemas/ledm/jobaccountingdyn/2026/01"

# Documents served under /DevMgmt/, with the resource type and revision that
# DiscoveryTree.xml announces for them (real HP values, FleetMeter's for job accounting).
RESOURCES: dict[str, tuple[str, str]] = {
    "ProductConfigDyn.xml": ("ledm:hpLedmProductConfigDyn", PRDCFGDYN2),
    "ProductStatusDyn.xml": ("ledm:hpLedmProductStatusDyn", PSDYN),
    "ConsumableConfigDyn.xml": ("ledm:hpLedmConsumableConfigDyn", CCDYN),
    "ProductUsageDyn.xml": ("ledm:hpLedmProductUsageDyn", PUDYN),
    "MediaHandlingDyn.xml": ("ledm:hpLedmMediaHandlingDyn", MHDYN),
    "MediaDyn.xml": ("ledm:hpLedmMediaDyn", MEDIADYN2),
    "ProductLogsDyn.xml": ("ledm:hpLedmProductLogsDyn", PLDYN),
    "JobAccountingDyn.xml": ("ledm:fmJobAccountingDyn", JADYN),
}
DOCUMENTS: tuple[str, ...] = ("DiscoveryTree.xml", *RESOURCES)

_PROLOG = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!-- FleetMeter simulator: synthetic device data in HP LEDM form. -->\n"
)
# Characters XML 1.0 cannot carry at all (escaping does not help): drop them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_STATUS_CATEGORY = {
    EngineState.IDLE: ("ready", 65537),
    EngineState.PRINTING: ("printing", 65543),
    EngineState.PROCESSING: ("processing", 65538),
    EngineState.SLEEP: ("inPowerSave", 65640),
}
_ALERT_STRING_ID = {
    "cartridgeLow": 65600,
    "cartridgeEmpty": 65602,
    "trayEmpty": 65921,
    "jamInPrinter": 65570,
    "printheadWarning": 65700,
}
_ALERT_RESOURCE = {
    "cartridge": ("/DevMgmt/ConsumableConfigDyn.xml", "ledm:hpLedmConsumableConfigDyn"),
    "printhead": ("/DevMgmt/ConsumableConfigDyn.xml", "ledm:hpLedmConsumableConfigDyn"),
    "roll": ("/DevMgmt/MediaHandlingDyn.xml", "ledm:hpLedmMediaHandlingDyn"),
    "engine": ("/DevMgmt/ProductStatusDyn.xml", "ledm:hpLedmProductStatusDyn"),
}


class UnknownDocument(KeyError):
    """The printer serves no document of that name."""


def _t(value: object) -> str:
    """Text content, XML-escaped (``&``, ``<``, ``>``) and stripped of XML-illegal characters."""
    # html.escape(quote=False) escapes exactly &, < and > — what XML character data needs.
    return html.escape(_INVALID_XML.sub("", str(value)), quote=False)


def _e(tag: str, value: object) -> str:
    return f"<{tag}>{_t(value)}</{tag}>"


def _ts(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ml(ul: int) -> str:
    """µL as millilitres with three decimals: ``round(float(text) * 1000)`` gives ``ul`` back."""
    return f"{ul // 1000}.{ul % 1000:03d}"


def _m2(mm2: int) -> str:
    return f"{mm2 // 1_000_000}.{mm2 % 1_000_000:06d}"


def _m(mm: int) -> str:
    return f"{mm // 1000}.{mm % 1000:03d}"


def _value(tag: str, value: str, unit: str) -> str:
    return f"<{tag}><dd:ValueFloat>{value}</dd:ValueFloat><dd:Unit>{unit}</dd:Unit></{tag}>"


def _installation(day: date) -> str:
    return f"<dd:Installation><dd:Date>{day.isoformat()}</dd:Date></dd:Installation>"


def _root(tag: str, namespaces: dict[str, str], body: list[str]) -> bytes:
    decl = " ".join(f'xmlns:{p}="{uri}"' for p, uri in namespaces.items())
    return (_PROLOG + f"<{tag} {decl}>\n" + "\n".join(body) + f"\n</{tag}>\n").encode()


def _version(revision: str, day: str) -> str:
    return f"<dd:Version><dd:Revision>{revision}</dd:Revision><dd:Date>{day}</dd:Date></dd:Version>"


# --------------------------------------------------------------------------- documents


def discovery_tree(printer: VirtualPrinter) -> bytes:
    body = [_version("SVN-IPG-LEDM.441", "2011-06-15")]
    for name, (rtype, revision) in RESOURCES.items():
        body.append(
            "<ledm:SupportedTree>"
            f"<dd:ResourceURI>/DevMgmt/{name}</dd:ResourceURI>"
            f"<dd:ResourceType>{rtype}</dd:ResourceType>"
            f"<dd:Revision>{revision}</dd:Revision>"
            "</ledm:SupportedTree>"
        )
    return _root("ledm:DiscoveryTree", {"xsi": XSI, "dd": DD, "ledm": LEDM}, body)


def product_config(printer: VirtualPrinter) -> bytes:
    m = printer.model
    info = [
        "<prdcfgdyn:ProductInformation>",
        _version(printer.firmware_version, printer.firmware_date.isoformat()),
        _e("dd:MakeAndModel", m.name),
        _e("dd:MakeAndModelBase", m.name),
        _e("dd:MakeAndModelFamily", m.family),
        _e("dd:UUID", printer.uuid),
        _e("dd:SerialNumber", printer.serial_number),
        _e("dd:ProductNumber", m.product_number),
        "<prdcfgdyn:Manufacturer><dd:Name>HP</dd:Name>"
        f"<dd:Date>{printer.manufactured_on.isoformat()}</dd:Date></prdcfgdyn:Manufacturer>",
        "</prdcfgdyn:ProductInformation>",
    ]
    settings = [
        "<prdcfgdyn2:ProductSettings>",
        _e("dd:TimeStamp", _ts(int(printer.now.timestamp()))),
        "<dd:TimeFormat>HR24</dd:TimeFormat><dd:DateFormat>YYYYMMMDD</dd:DateFormat>",
        "</prdcfgdyn2:ProductSettings>",
    ]
    return _root(
        "prdcfgdyn2:ProductConfigDyn",
        {"xsi": XSI, "dd": DD, "prdcfgdyn2": PRDCFGDYN2, "prdcfgdyn": PRDCFGDYN},
        [_version("SVN-IPG-LEDM.690", "2011-03-30"), *info, *settings],
    )


def product_status(printer: VirtualPrinter) -> bytes:
    body = [_version("SVN-IPG-LEDM.216", "2011-02-08")]
    state = printer.engine_state()
    errors = [a for a in printer.alerts if a.severity == "Error"]
    categories = [(a.code, _ALERT_STRING_ID.get(a.code, 65536)) for a in errors]
    if state in _STATUS_CATEGORY:
        categories.append(_STATUS_CATEGORY[state])
    for category, string_id in dict.fromkeys(categories):
        body.append(
            f"<psdyn:Status><pscat:StatusCategory>{category}</pscat:StatusCategory>"
            f"<locid:StringId>{string_id}</locid:StringId></psdyn:Status>"
        )
    table = ["<psdyn:AlertTable>", _e("dd:ModificationNumber", printer.alert_modifications)]
    for a in printer.alerts:
        kind, _, which = a.component.partition(":")
        details = ""
        if kind == "cartridge":
            details = (
                f"<ad:AlertDetailsMarkerColor>{_t(which)}</ad:AlertDetailsMarkerColor>"
                "<ad:AlertDetailsConsumableTypeEnum>inkCartridge</ad:AlertDetailsConsumableTypeEnum>"
            )
        elif kind == "printhead":
            details = (
                "<ad:AlertDetailsConsumableTypeEnum>printhead</ad:AlertDetailsConsumableTypeEnum>"
                f"<ad:AlertDetailsMarkerLocation>{_t(which)}</ad:AlertDetailsMarkerLocation>"
            )
        elif kind == "roll":
            details = f"<ad:AlertDetailsInputBin>{_t(which)}</ad:AlertDetailsInputBin>"
        uri, rtype = _ALERT_RESOURCE[kind]
        priority = {"Error": 100, "Warning": 200}.get(a.severity, 399)
        table.append(
            "<psdyn:Alert>"
            + _e("ad:ProductStatusAlertID", a.code)
            + _e("locid:StringId", _ALERT_STRING_ID.get(a.code, 65536))
            + _e("dd:SequenceNumber", a.sequence_number)
            + _e("ad:Severity", a.severity)
            + _e("ad:AlertPriority", priority)
            + f"<ad:AlertDetails>{details}</ad:AlertDetails>"
            + _e("dd:TimeStamp", _ts(a.raised_at))
            + _e("dd:ResourceURI", uri)
            + _e("dd:ResourceType", rtype)
            + "</psdyn:Alert>"
        )
    table.append("</psdyn:AlertTable>")
    return _root(
        "psdyn:ProductStatusDyn",
        {"xsi": XSI, "dd": DD, "ad": AD, "pscat": PSCAT, "locid": LOCID, "psdyn": PSDYN},
        body + table,
    )


def consumable_config(printer: VirtualPrinter) -> bytes:
    n = len(printer.cartridges) + len(printer.printheads)
    body = [
        _version("SVN-IPG-LEDM.290", "2010-06-02"),
        "<ccdyn:ProductConsumableInfo>"
        f"<dd:NumOfUserReplaceableConsumables>{n}</dd:NumOfUserReplaceableConsumables>"
        "<dd:NumOfNonUserReplaceableConsumables>0</dd:NumOfNonUserReplaceableConsumables>"
        "<dd:ConsumableSlotDirection>leftToRight</dd:ConsumableSlotDirection>"
        "</ccdyn:ProductConsumableInfo>",
    ]
    for head in printer.printheads:
        state = "veryLow" if head.health < 8 else "low" if head.health < 20 else "ok"
        body.append(
            "<ccdyn:ConsumableInfo>"
            "<dd:ConsumableContentType>markingAgent</dd:ConsumableContentType>"
            + _e("dd:ConsumableLabelCode", "".join(head.spec.colors))
            + "".join(_e("dd:MarkerColor", c) for c in head.spec.colors)
            + f"<dd:ConsumableLifeState><dd:ConsumableState>{state}</dd:ConsumableState>"
            "<dd:Brand>HP</dd:Brand></dd:ConsumableLifeState>"
            + _e("dd:ConsumablePercentageLevelRemaining", head.health_percent)
            + "<dd:ConsumableReplaceabilityType>userReplaceable</dd:ConsumableReplaceabilityType>"
            + _e("dd:ConsumableStation", head.slot)
            + "<dd:ConsumableTypeEnum>printhead</dd:ConsumableTypeEnum>"
            + _installation(head.installed_on)
            + "<dd:Manufacturer><dd:Name>HP</dd:Name></dd:Manufacturer>"
            + _e("dd:ProductNumber", head.spec.product_number)
            + _e("dd:SerialNumber", head.serial_number)
            + _e("dd:ConsumableSelectibilityNumber", head.spec.name)
            + "</ccdyn:ConsumableInfo>"
        )
    for cart in printer.cartridges:
        spec = cart.spec
        expires = cart.manufactured_on.replace(year=cart.manufactured_on.year + 2)
        body.append(
            "<ccdyn:ConsumableInfo>"
            f"<dd:Capacity><dd:MaxCapacity>{spec.capacity_ul // 100}</dd:MaxCapacity>"
            "<dd:Unit>tenthsOfMilliliters</dd:Unit></dd:Capacity>"
            "<dd:ConsumableContentType>markingAgent</dd:ConsumableContentType>"
            + _e("dd:ConsumableLabelCode", spec.color)
            + f"<dd:ConsumableLifeState><dd:ConsumableState>{cart.state}</dd:ConsumableState>"
            f"<dd:MeasuredQuantityState>{cart.state}</dd:MeasuredQuantityState>"
            "<dd:Brand>HP</dd:Brand></dd:ConsumableLifeState>"
            + _e("dd:ConsumablePercentageLevelRemaining", cart.level_percent)
            + "<dd:ConsumableReplaceabilityType>userReplaceable</dd:ConsumableReplaceabilityType>"
            + _e("dd:ConsumableSelectibilityNumber", spec.name)
            + _e("dd:ConsumableStation", cart.slot)
            + "<dd:ConsumableTypeEnum>ink</dd:ConsumableTypeEnum>"
            + _installation(cart.installed_on)
            + "<dd:Manufacturer><dd:Name>HP</dd:Name>"
            + f"<dd:Date>{cart.manufactured_on.isoformat()}</dd:Date></dd:Manufacturer>"
            + _e("dd:ProductNumber", spec.product_number)
            + _e("dd:SerialNumber", cart.serial_number)
            + f"<dd:Warranty>{_e('dd:ExpirationDate', expires.isoformat())}</dd:Warranty>"
            + "</ccdyn:ConsumableInfo>"
        )
    return _root(
        "ccdyn:ConsumableConfigDyn", {"xsi": XSI, "dd": DD, "dd2": DD2, "ccdyn": CCDYN}, body
    )


def product_usage(printer: VirtualPrinter) -> bytes:
    c = printer.counters
    unit = [
        "<pudyn:PrinterSubunit>",
        _e("dd:TotalImpressions", c.impressions),
        _e("dd:MonochromeImpressions", c.mono_impressions),
        _e("dd:ColorImpressions", c.color_impressions),
        _e("dd:TotalJobs", c.jobs),
        _value("dd:TotalArea", _m2(c.total_media_area_mm2), "squareMeters"),
        _value("dd:TotalLength", _m(c.total_media_length_mm), "meters"),
        "<pudyn:UsageByMarkingAgent>"
        + _value("dd2:CumulativeMarkingAgentUsed", _ml(c.total_ink_ul), "milliliters")
        + _value("dd2:CumulativeHPMarkingAgentUsed", _ml(c.total_ink_ul), "milliliters")
        + "</pudyn:UsageByMarkingAgent>",
    ]
    for color in c.colors:
        unit.append(
            "<pudyn:UsageByMarkingAgent>"
            + _e("dd:MarkerColor", color)
            + _value("dd2:CumulativeMarkingAgentUsed", _ml(c.ink_ul[color]), "milliliters")
            + _value("dd2:CumulativeHPMarkingAgentUsed", _ml(c.ink_ul[color]), "milliliters")
            + _e("dd2:CumulativeConsumableCount", c.insertions[color])
            + "</pudyn:UsageByMarkingAgent>"
        )
    for media in c.media_types:
        unit.append(
            "<pudyn:UsageByMedia>"
            + _e("dd:MediaType", media)
            + _e("dd:TotalImpressions", c.media_impressions[media])
            + _value("dd:TotalArea", _m2(c.media_area_mm2[media]), "squareMeters")
            + _value("dd:TotalLength", _m(c.media_length_mm[media]), "meters")
            + "</pudyn:UsageByMedia>"
        )
    unit.append("</pudyn:PrinterSubunit>")
    if c.has_scanner:
        unit.append(
            "<pudyn:ScanApplicationSubunit>"
            + _e("dd:TotalJobs", c.scan_jobs)
            + _value("dd:TotalArea", _m2(c.scanned_area_mm2), "squareMeters")
            + "</pudyn:ScanApplicationSubunit>"
        )
        unit.append(
            "<pudyn:CopyApplicationSubunit>"
            + _e("dd:TotalJobs", c.copy_jobs)
            + _value("dd:TotalArea", _m2(c.copied_area_mm2), "squareMeters")
            + "</pudyn:CopyApplicationSubunit>"
        )
    return _root(
        "pudyn:ProductUsageDyn",
        {"xsi": XSI, "dd": DD, "dd2": DD2, "pudyn": PUDYN},
        [_version("SVN-IPG-LEDM.119", "2010-08-31"), *unit],
    )


def media_handling(printer: VirtualPrinter) -> bytes:
    rolls = printer.rolls
    body = [
        _version("SVN-IPG-LEDM.29", "2010-05-13"),
        "<mhdyn:MediaHandlingInfo>"
        + _e("dd:NumOfInputTrays", len(rolls))
        + "<dd:NumOfOutputBins>1</dd:NumOfOutputBins>"
        + _e("dd:DefaultInputTray", rolls[0].name)
        + "<dd:DefaultOutputBin>OutputBin1</dd:DefaultOutputBin>"
        + "<dd:MediaOutActionType>waitForPaperToBeLoaded</dd:MediaOutActionType>"
        + "</mhdyn:MediaHandlingInfo>",
    ]
    for roll in rolls:
        body.append(
            "<mhdyn:InputRoll>"
            + _e("dd:InputBin", roll.name)
            + "<dd:TrayType>roll</dd:TrayType>"
            + "<dd:ComponentOrigin>builtIn</dd:ComponentOrigin>"
            + "<dd:TrayState>installed</dd:TrayState>"
            + "<dd:FeederType>auto</dd:FeederType>"
            + _e("dd:MediaType", roll.media_type)
            + _e("mhdyn:MediaState", "present" if roll.loaded else "missing")
            + _value("mhdyn:MediaWidth", str(roll.width_mm), "millimeters")
            + _value("mhdyn:RemainingLength", str(roll.remaining_mm), "millimeters")
            + "</mhdyn:InputRoll>"
        )
    body.append(
        "<mhdyn:OutputBin><dd:HPOutputBin>OutputBin1</dd:HPOutputBin>"
        "<dd:MediaHandlingDeviceFunctionType>stack</dd:MediaHandlingDeviceFunctionType>"
        "</mhdyn:OutputBin>"
    )
    return _root("mhdyn:MediaHandlingDyn", {"xsi": XSI, "dd": DD, "mhdyn": MHDYN}, body)


def media(printer: VirtualPrinter) -> bytes:
    body = [
        _version("SVN-IPG-LEDM.98", "2010-08-04"),
        "<dd:PrintableAreaMargin><dd:Top>5</dd:Top><dd:Left>5</dd:Left><dd:Bottom>5</dd:Bottom>"
        "<dd:Right>5</dd:Right><dd:Units>millimeters</dd:Units></dd:PrintableAreaMargin>",
        _e("dd:MediaType", printer.rolls[0].media_type),
        "<mediadyn2:SupportedMediaTypes>",
    ]
    for media_id in printer.model.media:
        names = "".join(
            f'<mediadyn2:LocalizedName xml:lang="{lang}">{_t(name)}</mediadyn2:LocalizedName>'
            for lang, name in MEDIA[media_id].names.items()
        )
        body.append(
            f"<mediadyn2:MediaTypeInfo>{_e('dd:MediaType', media_id)}{names}"
            "</mediadyn2:MediaTypeInfo>"
        )
    body.append("</mediadyn2:SupportedMediaTypes>")
    return _root(
        "mediadyn2:MediaDyn",
        {"xsi": XSI, "mediadyn": MEDIADYN, "mediadyn2": MEDIADYN2, "dd": DD, "ledm": LEDM},
        body,
    )


def product_logs(printer: VirtualPrinter) -> bytes:
    body = [_version("SVN-IPG-LEDM.29", "2010-05-13"), "<pldyn:EventLog>"]
    firmware = _e("dd:Revision", printer.firmware_version)
    for ev in reversed(printer.events):  # newest first, like the real log
        body.append(
            "<pldyn:Event>"
            + _e("dd:SequenceNumber", ev.sequence_number)
            + "<dd:EventOccurrences>1</dd:EventOccurrences>"
            + _e("dd:EventCode", ev.code)
            + _e("dd:TotalImpressions", ev.impressions)
            + _e("dd:TimeStamp", _ts(ev.at))
            + "<dd:TimeFormat>HR24</dd:TimeFormat><dd:DateFormat>YYYYMMMDD</dd:DateFormat>"
            + _e("dd:EventDetail", ev.text)
            + _e("dd:Severity", ev.severity)
            + f"<dd:FirmwareVersion>{firmware}</dd:FirmwareVersion>"
            + "</pldyn:Event>"
        )
    body.append("</pldyn:EventLog>")
    return _root("pldyn:ProductLogsDyn", {"xsi": XSI, "dd": DD, "pldyn": PLDYN}, body)


def job_element(job: SimJob) -> str:
    """One ``jadyn:Job`` element (architecture.md, "JobAccountingDyn.xml")."""
    submitter = (
        _e("jadyn:Project", job.project)
        + _e("jadyn:Application", job.application)
        + _e("jadyn:Account", job.account)
        + _e("jadyn:User", job.user)
        + (_e("jadyn:UserDefined", job.user_defined) if job.user_defined is not None else "")
        + _e("dd:TimeStamp", _ts(job.submitted_at))
    )
    media = ""
    if job.media_type is not None:
        media = (
            _e("jadyn:MediaType", job.media_type)
            + _e("jadyn:MediaWidthMillimeters", job.media_width_mm)
            + _e("jadyn:MediaLengthMillimeters", job.media_length_mm)
        )
    inks = "".join(
        "<jadyn:Ink>"
        + _e("dd:MarkerColor", color)
        + _e("jadyn:Microliters", ul)
        + _e("jadyn:PixelCoveragePpm", job.pixel_coverage_ppm.get(color, 0))
        + "</jadyn:Ink>"
        for color, ul in job.ink_ul.items()
    )
    return (
        "<jadyn:Job>"
        + _e("dd:UUID", job.job_uuid)
        + _e("dd:SequenceNumber", job.sequence_number)
        + _e("jadyn:JobType", job.kind.value)
        + _e("dd:JobName", job.name)
        + _e("jadyn:Status", job.status.value)
        + _e("jadyn:Source", job.source)
        + f"<jadyn:Submitter>{submitter}</jadyn:Submitter>"
        + _e("jadyn:CompletedTime", _ts(job.completed_at))
        + _e("jadyn:PrintTimeSeconds", job.print_time_s)
        + _e("jadyn:DurationSeconds", job.duration_s)
        + _e("jadyn:ApplicationCategory", job.application_category)
        + _e("jadyn:CoverageCategory", job.coverage_category)
        + _e("jadyn:PrintQuality", job.print_quality)
        + _e("dd:TotalImpressions", job.pages)
        + _e("jadyn:Copies", job.copies)
        + media
        + _e("jadyn:MediaAreaSquareMillimeters", job.media_area_mm2)
        + _e("jadyn:PrintedAreaSquareMillimeters", job.printed_area_mm2)
        + _e("jadyn:ScanAreaSquareMillimeters", job.scan_area_mm2)
        + f"<jadyn:InkUsed>{inks}</jadyn:InkUsed>"
        + "</jadyn:Job>"
    )


def job_accounting(printer: VirtualPrinter) -> bytes:
    body = [_version("FM-JA.1", "2026-01-01"), "<jadyn:JobList>"]
    for job in printer.recent_jobs():
        # Completed jobs never change: render each once and keep it while it is in the log,
        # so serving a 2000-job document is a join, not 2000 renderings.
        if job.xml is None:
            job.xml = job_element(job)
        body.append(job.xml)
    body.append("</jadyn:JobList>")
    return _root("jadyn:JobAccountingDyn", {"jadyn": JADYN, "dd": DD}, body)


RENDERERS: dict[str, Callable[[VirtualPrinter], bytes]] = {
    "DiscoveryTree.xml": discovery_tree,
    "ProductConfigDyn.xml": product_config,
    "ProductStatusDyn.xml": product_status,
    "ConsumableConfigDyn.xml": consumable_config,
    "ProductUsageDyn.xml": product_usage,
    "MediaHandlingDyn.xml": media_handling,
    "MediaDyn.xml": media,
    "ProductLogsDyn.xml": product_logs,
    "JobAccountingDyn.xml": job_accounting,
}


def render(printer: VirtualPrinter, name: str) -> bytes:
    """The document ``name`` (e.g. ``"ProductUsageDyn.xml"``) as the printer is now."""
    try:
        renderer = RENDERERS[name]
    except KeyError:
        raise UnknownDocument(name) from None
    return renderer(printer)


def render_all(printer: VirtualPrinter) -> dict[str, bytes]:
    """Every document the printer serves, by name."""
    return {name: renderer(printer) for name, renderer in RENDERERS.items()}
