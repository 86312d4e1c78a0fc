"""Upload the outbox to the portal in compressed batches, at least once, deduplicated by batch id.

Order of operations per batch (see ``state`` for the guarantees this relies on):

1. batches formed earlier and never confirmed are re-sent first, under their stored id;
2. new batches take rows in outbox order, as many as fit in ``max_batch_bytes`` compressed;
   a report that does not fit even alone is quarantined so it cannot block the queue;
3. the batch id is stored with its rows *before* the POST;
4. ``200`` → rows deleted; network error, ``408``, ``429``, ``5xx`` → kept, exponential backoff
   with jitter; any other ``4xx`` → batch quarantined with the portal's problem detail.

The collector token travels only in the ``Authorization`` header and is never logged.

Portal traffic goes through the proxy of ``[proxy]`` when the config has one, else through the
environment's ``https_proxy`` / ``HTTPS_PROXY`` unless ``no_proxy`` / ``NO_PROXY`` names the
portal (``portal_proxy``). The proxy's credentials reach httpx only as ``Proxy(auth=...)``, never
inside a URL, so no log line, error or repr carries them. Devices never go through a proxy.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import ValidationError

from fleetmeter.collector.config import CollectorConfig, ConfigError
from fleetmeter.collector.state import OutboxRow, State
from fleetmeter.wire import Batch, BatchReceipt, DeviceReport, now_utc
from fleetmeter.wire.codec import encode_batch

log = logging.getLogger(__name__)

MAX_REPORTS_PER_BATCH = 10_000  # wire.model.Batch.reports max_length
RETRYABLE_4XX = frozenset({401, 403, 404, 407, 408, 429})
"""Answers about the *sender* or the path, not about this batch: a rotated token, a proxy
asking for credentials, a load balancer during a deploy. Quarantining would set the whole
outbox aside for a fault that is fixed outside the collector, so they are retried with
backoff. Only answers about the batch itself (400, 413, 415, 422) quarantine it."""


class UploadError(RuntimeError):
    """An upload attempt failed in a way worth retrying later (network, 5xx, 408, 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class UploadResult:
    batches_sent: int = 0
    reports_sent: int = 0
    jobs_sent: int = 0
    quarantined: list[str] = field(default_factory=list)
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.quarantined


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify the portal against ``ca_file`` if configured, else the system's CA store."""
    # ssl.create_default_context() loads the OS trust store (httpx's default is certifi's
    # bundle, which an enterprise's private CA installed on the host would not be in).
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


# --------------------------------------------------------------------------- proxy

PROXY_VARIABLES = {
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
    "http": ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
}
"""The environment variables naming the portal's proxy, first set one wins (lower case first,
as curl and Python's urllib read them)."""
NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")


@dataclass(frozen=True)
class PortalProxy:
    """The proxy that portal traffic goes through: its URL (never with credentials), where it
    was configured (``[proxy]`` or the environment variable's name), and the credentials for
    its Basic authentication (kept out of repr)."""

    url: str
    source: str
    auth: tuple[str, str] | None = field(default=None, repr=False, compare=False)
    ca_file: Path | None = None

    def __str__(self) -> str:
        return f"proxy {self.url} (from {self.source})"

    def httpx_proxy(self) -> httpx.Proxy:
        # auth= sends the Proxy-Authorization header (on CONNECT, and on requests forwarded in
        # the clear); the URL, which httpx and httpcore may put in reprs and error messages,
        # carries no credentials.
        context = ssl_context(self.ca_file) if self.url.startswith("https:") else None
        return httpx.Proxy(self.url, auth=self.auth, ssl_context=context)


def portal_proxy(
    config: CollectorConfig, environ: Mapping[str, str] | None = None
) -> PortalProxy | None:
    """The proxy for portal traffic, or None to connect directly.

    ``[proxy]`` wins and the environment is then ignored entirely. Without it, the first of
    ``https_proxy``, ``HTTPS_PROXY``, ``all_proxy``, ``ALL_PROXY`` that is set (``http_proxy``
    ... for an ``http://`` portal), unless ``no_proxy`` / ``NO_PROXY`` names the portal's host.
    The environment is read here, once, rather than by httpx (``trust_env``), so that what the
    collector does is exactly what it logs and shows. Raises ``ConfigError`` for a proxy URL
    in the environment that it cannot use.
    """
    if config.proxy is not None:
        section = config.proxy
        return PortalProxy(section.url, "[proxy]", section.auth, section.ca_file)
    env = os.environ if environ is None else environ
    portal = urlsplit(config.portal.url)
    for name in PROXY_VARIABLES[portal.scheme]:
        value = env.get(name, "").strip()
        if value:
            break
    else:
        return None
    no_proxy = next((env[n] for n in NO_PROXY_VARIABLES if env.get(n, "").strip()), "")
    if no_proxy_matches(portal.hostname or "", no_proxy):
        return None
    return _proxy_from_environment(name, value)


def _proxy_from_environment(name: str, value: str) -> PortalProxy:
    """``http://user:pass@host:port`` (scheme optional, as curl takes it) → a PortalProxy with
    the credentials moved out of the URL. Errors never quote the value: it may hold them."""
    parts = urlsplit(value if "://" in value else f"http://{value}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError([f"environment: {name}: the proxy's port is invalid"]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            [f"environment: {name}: not an http:// or https:// proxy URL (socks is not supported)"]
        )
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    url = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    return PortalProxy(url, name, auth)


def no_proxy_matches(host: str, no_proxy: str) -> bool:
    """Does a ``NO_PROXY`` list (comma-separated) exempt ``host``? As curl reads it: ``*`` is
    every host; a name matches itself and its subdomains (a leading dot changes nothing); an
    IP address or CIDR block matches the addresses in it. Ports are not part of the match."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass  # a name: never matches an address
            continue
        entry = entry.strip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _proxy_refused(proxy: PortalProxy | None, status: int) -> str:
    """One line for a proxy that did not take our credentials. RFC 9110 §15.5.8 says 407;
    tinyproxy 1.11 answers 407 only when there are none and 401 to wrong ones."""
    if proxy is None:
        return (
            f"a proxy on the way asks for credentials (HTTP {status}); set [proxy] with its "
            "url, username and password"
        )
    configured = proxy.source == "[proxy]"
    if proxy.auth is None:
        fix = (
            "set proxy.username and proxy.password"
            if configured
            else f"put user:password@ in {proxy.source}, or set [proxy]"
        )
        return f"proxy asks for credentials: {proxy} answered HTTP {status}; {fix}"
    fix = (
        "check proxy.username and proxy.password"
        if configured
        else f"check the user and password in {proxy.source}"
    )
    return f"proxy refused the credentials: {proxy} answered HTTP {status}; {fix}"


def describe_http_error(exc: httpx.HTTPError, url: str, proxy: PortalProxy | None = None) -> str:
    """One line for a transport failure, naming TLS verification and proxy problems plainly."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or str(cause)
            also = (
                " (or proxy.ca_file to the CA of the proxy's)"
                if proxy is not None and proxy.url.startswith("https:")
                else ""
            )
            return (
                f"portal {url}: TLS certificate verification failed ({detail}); set "
                f"portal.ca_file to the CA that issued the portal's certificate{also}"
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ProxyError) and proxy is not None:
        # httpcore's message for a refused CONNECT is the proxy's status line, e.g.
        # "407 Proxy Authentication Required": the portal was never reached.
        status = str(exc).split(" ", 1)[0]
        if status in ("401", "407"):
            return f"portal {url}: {_proxy_refused(proxy, int(status))}"
        return f"portal {url}: {proxy} refused to open a tunnel to it: {exc}"
    via = f" via {proxy}" if proxy is not None else ""
    if isinstance(exc, httpx.TimeoutException):
        return f"portal {url}: timed out{via}"
    if isinstance(exc, httpx.ConnectError):
        if proxy is not None:
            # Through a proxy the connection is to the proxy; the portal's own refusal would
            # have come back as the proxy's answer to CONNECT (a ProxyError).
            return f"portal {url}: cannot connect to {proxy}: {exc or type(exc).__name__}"
        return f"portal {url}: cannot connect: {exc or type(exc).__name__}"
    return f"portal {url}: {type(exc).__name__}: {exc}{via}"


def _problem_detail(response: httpx.Response) -> str:
    """The portal's RFC 9457 problem as one line (title, detail, field errors)."""
    text = response.text[:2000]
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip().replace("\n", " ")[:500] or response.reason_phrase
    if not isinstance(doc, dict):
        return text[:500]
    parts = [str(doc[k]) for k in ("title", "detail") if doc.get(k)]
    errors = doc.get("errors")
    if isinstance(errors, list) and errors:
        parts.append(json.dumps(errors)[:500])
    return ": ".join(parts) or text[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; the exponential backoff applies instead


@dataclass
class UploadStatus:
    """What the site console shows about uploads (in memory: this process's view)."""

    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None  # the portal last stored a batch
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_retry_at: datetime | None = None  # set while backing off after a failure
    batches_sent: int = 0
    proxy: str | None = None  # "proxy URL (from SOURCE)" when portal traffic goes via one


class Backoff:
    """Exponential backoff with full jitter, capped (AWS Architecture Blog, "Exponential
    Backoff And Jitter"): spreads many collectors' retries after a portal outage."""

    def __init__(self, *, base_s: float = 1.0, cap_s: float = 300.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.failures, 30))
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not security)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_s))
        return delay


def _encode(
    batch_id: uuid.UUID, created_at: datetime, sender: str, reports: Sequence[DeviceReport]
) -> bytes:
    batch = Batch(batch_id=batch_id, created_at=created_at, sender=sender, reports=list(reports))
    return encode_batch(batch, "zstd")


def _reports(rows: Sequence[OutboxRow]) -> list[DeviceReport]:
    return [DeviceReport.model_validate_json(row.report_json) for row in rows]


def parse_rows(
    rows: Sequence[OutboxRow],
) -> tuple[list[DeviceReport], list[tuple[OutboxRow, str]]]:
    """Each row's report, parsed once, and the rows whose stored report no longer validates
    (e.g. written by an older collector that accepted an out-of-range value): those are
    quarantined alone instead of stopping every upload."""
    good: list[DeviceReport] = []
    bad: list[tuple[OutboxRow, str]] = []
    for row in rows:
        try:
            good.append(DeviceReport.model_validate_json(row.report_json))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            bad.append((row, f"stored report is invalid at {where}: {first.get('msg', '')}"))
    return good, bad


def split_rows(
    rows: Sequence[OutboxRow],
    *,
    max_bytes: int,
    sender: str,
    created_at: datetime,
    reports: Sequence[DeviceReport] | None = None,
) -> tuple[list[OutboxRow], list[OutboxRow]]:
    """The longest prefix of ``rows`` whose encoded batch fits ``max_bytes``, and the rows that
    are too large alone (only ever the first row: a prefix of one that does not fit).

    Exponential then binary search over the prefix length: O(log n) compressions instead of
    one per row. Compressed size grows with the prefix in practice; the prefix taken is one
    whose *measured* size fits, so the bound holds whatever the compressor does.
    """
    probe_id = uuid.UUID(int=0)  # same length as any uuid4: the size measured is the size sent
    rows = rows[:MAX_REPORTS_PER_BATCH]
    # Parsed once, not once per probe (``reports``: the caller parsed them already).
    reports = list(reports[: len(rows)]) if reports is not None else _reports(rows)

    def fits(n: int) -> bool:
        return len(_encode(probe_id, created_at, sender, reports[:n])) <= max_bytes

    if not rows:
        return [], []
    if not fits(1):
        return [], [rows[0]]
    good, bad = 1, None  # invariant: prefix `good` fits; prefix `bad` (if known) does not
    while good < len(rows):
        n = min(good * 2, len(rows))
        if not fits(n):
            bad = n
            break
        good = n
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    return list(rows[:good]), []


class Uploader:
    """Sends the outbox. One per process; holds the HTTP client and the backoff state."""

    def __init__(self, config: CollectorConfig, state: State) -> None:
        self.config = config
        self.state = state
        self.url = config.portal.ingest_url
        self.backoff = Backoff(cap_s=config.upload.max_backoff_seconds)
        # Sites often reach out only via a proxy: [proxy], else HTTPS_PROXY / NO_PROXY.
        self.proxy = portal_proxy(config)
        self.status = UploadStatus(proxy=str(self.proxy) if self.proxy else None)
        self._client = httpx.AsyncClient(
            verify=ssl_context(config.portal.ca_file),
            timeout=config.portal.timeout_seconds,
            proxy=self.proxy.httpx_proxy() if self.proxy else None,
            # The environment was read once, by portal_proxy: nothing else of it applies.
            trust_env=False,
        )
        if self.proxy is not None:
            log.info("portal traffic goes through %s", self.proxy)

    @property
    def client(self) -> httpx.AsyncClient:
        """The portal client (its TLS and proxy settings), shared by the settings fetch."""
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Uploader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def check_portal(self) -> str | None:
        """Can the portal be reached over verified TLS? None if yes, else a one-line reason."""
        url = self.config.portal.url
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            return describe_http_error(exc, url, self.proxy)
        if response.status_code == 407:  # a proxy forwarding plain http asks for credentials
            return f"portal {url}: {_proxy_refused(self.proxy, 407)}"
        return None

    async def upload_all(self) -> UploadResult:
        """Send batches until the outbox is empty or an attempt fails (the caller backs off)."""
        result = UploadResult()
        self.status.last_attempt_at = now_utc()
        sender = self.config.collector.name
        max_bytes = self.config.upload.max_batch_bytes
        try:
            for pending in self.state.pending_batches():
                rows = list(pending.rows)
                reports, broken = parse_rows(rows)
                for row, reason in broken:
                    self._quarantine_row(row, reason, result)
                    rows.remove(row)
                if rows:
                    await self._send(
                        pending.batch_id, pending.created_at, rows, result, reports=reports
                    )
                else:
                    self.state.confirm_batch(pending.batch_id)  # nothing left in it
            # Read about twice what the last batch held: parsing the whole outbox for every
            # batch of ~100 reports made an upload quadratic in the outbox depth and held it
            # all in memory (docs/performance.md). A window that fits entirely doubles.
            window = 256
            while rows := self.state.unbatched_rows(window):
                reports, broken = parse_rows(rows)
                for row, reason in broken:
                    self._quarantine_row(row, reason, result)
                if broken:
                    continue  # read the window again without them
                created_at = now_utc()
                batch_rows, too_large = split_rows(
                    rows,
                    max_bytes=max_bytes,
                    sender=sender,
                    created_at=created_at,
                    reports=reports,
                )
                for row in too_large:
                    reason = f"report alone exceeds max_batch_bytes ({max_bytes}) compressed"
                    self._quarantine_row(row, reason, result)
                if batch_rows:
                    batch_id = self.state.assign_batch(
                        [r.id for r in batch_rows], created_at=created_at
                    )
                    await self._send(
                        batch_id, created_at, batch_rows, result, reports=reports[: len(batch_rows)]
                    )
                window = min(MAX_REPORTS_PER_BATCH, max(64, 2 * len(batch_rows)))
        except UploadError as exc:
            result.error = str(exc)
            result.retry_after = exc.retry_after
            self.status.last_error = result.error
            self.status.last_error_at = now_utc()
            return result
        finally:
            self.status.batches_sent += result.batches_sent
        self.backoff.reset()
        if result.batches_sent:  # an empty outbox sends nothing: it proves nothing either
            self.status.last_success_at = now_utc()
        self.status.next_retry_at = None
        return result

    def _quarantine_row(self, row: OutboxRow, reason: str, result: UploadResult) -> None:
        log.error("outbox row %d quarantined: %s", row.id, reason)
        self.state.quarantine_row(row.id, reason)
        result.quarantined.append(f"row {row.id}: {reason}")

    async def _send(
        self,
        batch_id: uuid.UUID,
        created_at: datetime,
        rows: Sequence[OutboxRow],
        result: UploadResult,
        *,
        reports: Sequence[DeviceReport] | None = None,
    ) -> None:
        if reports is None:
            reports = _reports(rows)
        body = _encode(batch_id, created_at, self.config.collector.name, reports)
        headers = {
            "Authorization": f"Bearer {self.config.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
            # Which portal settings this collector runs: the portal shows it per collector.
            "FleetMeter-Config-Version": str(self.config.settings_version),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            reason = describe_http_error(exc, self.url, self.proxy)
            self.state.record_batch_failure(batch_id, reason)
            raise UploadError(reason) from exc

        status = response.status_code
        if status == 200:
            self._check_receipt(batch_id, response)
            deleted = self.state.confirm_batch(batch_id)
            result.batches_sent += 1
            result.reports_sent += deleted
            result.jobs_sent += sum(len(r.jobs) for r in reports)
            log.info("batch %s: %d reports, %d bytes, stored", batch_id, deleted, len(body))
            return
        if status == 407:  # a proxy forwarding plain http (CONNECT refusals are ProxyErrors)
            reason = _proxy_refused(self.proxy, status)
        else:
            reason = f"portal answered {status}: {_problem_detail(response)}"
        if status >= 500 or status in RETRYABLE_4XX:
            self.state.record_batch_failure(batch_id, reason)
            raise UploadError(f"batch {batch_id}: {reason}", retry_after=_retry_after(response))
        # Any other 4xx will not get better by resending the same bytes: keep the rows
        # (visible in `collector status`), stop sending them, and carry on with the rest.
        log.error("batch %s quarantined: %s", batch_id, reason)
        self.state.quarantine_batch(batch_id, reason)
        result.quarantined.append(f"batch {batch_id}: {reason}")

    def _check_receipt(self, batch_id: uuid.UUID, response: httpx.Response) -> None:
        try:
            receipt = BatchReceipt.model_validate_json(response.content)
        except ValidationError:
            # A 200 without our receipt may come from something that is not the portal (a
            # captive portal, an inspecting proxy's notice page): the batch may not be stored.
            # Keep it and send it again; the portal stores a batch id once, so a resend of a
            # batch it did store is answered "duplicate" and costs nothing.
            reason = "answer 200 is not a FleetMeter receipt (a proxy or captive portal?)"
            self.state.record_batch_failure(batch_id, reason)
            raise UploadError(f"batch {batch_id}: {reason}") from None
        if receipt.batch_id != batch_id:
            raise UploadError(
                f"batch {batch_id}: portal acknowledged another batch ({receipt.batch_id})"
            )
