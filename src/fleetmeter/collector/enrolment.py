"""``fleetmeter collector enroll``: trade a one-time token for this collector's credentials.

The reseller makes a token for one customer in the portal (or with ``fleetmeter portal
create-enrolment-token``). Enrolment sends it once, over verified HTTPS, and writes:

- ``collector.token`` beside the config (mode 0600): the collector's own token;
- the config file: the portal URL, that token file, the portal's public signing key (which
  settings changed in the portal must be signed with) and this collector's id.

The config has no ``[[ranges]]``: the portal sends them. Nothing is overwritten: an existing
config or token file stops enrolment before the token is spent.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, Field, ValidationError

from fleetmeter.collector.config import ConfigError, PortalSection
from fleetmeter.collector.uploader import describe_http_error, ssl_context
from fleetmeter.signing.documents import DocumentError, parse_public_key

ENROLMENT_PATH = "/api/v1/enrolment"
TOKEN_FILE = "collector.token"  # noqa: S105  (a file name)


class EnrolmentError(RuntimeError):
    """Enrolment did not happen; the message says why (one line)."""


class _Answer(BaseModel):
    collector_id: uuid.UUID
    token: str = Field(min_length=8, max_length=128)
    reseller: str = Field(max_length=256)
    customer: str = Field(max_length=256)
    config_signing_key: str = Field(max_length=128)


@dataclass(frozen=True)
class Enrolled:
    collector_id: uuid.UUID
    reseller: str
    customer: str
    config: Path
    token_file: Path


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def _portal_section(url: str, ca_file: Path | None, allow_insecure_http: bool) -> PortalSection:
    """The URL checked by the same rules as the config's (https, or http to loopback)."""
    try:
        return PortalSection(
            # A placeholder token: only the URL rules are wanted here.
            url=url,
            token="placeholder",  # noqa: S106
            ca_file=ca_file,
            allow_insecure_http=allow_insecure_http,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            [f"--portal: {str(first['msg']).removeprefix('Value error, ')}"]
        ) from None


def enroll(
    *,
    portal_url: str,
    customer: str,
    token: str,
    config_path: Path,
    name: str | None = None,
    ca_file: Path | None = None,
    data_dir: str = "collector-data",
    allow_insecure_http: bool = False,
    timeout_s: float = 30.0,
) -> Enrolled:
    config_path = config_path.expanduser()
    token_path = config_path.parent / TOKEN_FILE
    for path in (config_path, token_path):
        if path.exists():
            raise ConfigError(
                [f"{path} already exists; enrolment writes a new one (move it away first)"]
            )
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError([f"--ca-file: {ca_file} does not exist"])
    portal = _portal_section(portal_url, ca_file, allow_insecure_http)
    url = portal.url.rstrip("/") + ENROLMENT_PATH
    body = {"customer": customer, "token": token.strip(), "name": name}
    try:
        # trust_env: a site that reaches out through a proxy has it in HTTPS_PROXY.
        with httpx.Client(verify=ssl_context(ca_file), timeout=timeout_s, trust_env=True) as http:
            response = http.post(url, json=body)
    except httpx.HTTPError as exc:
        raise EnrolmentError(describe_http_error(exc, url)) from None
    if response.status_code != 201:
        raise EnrolmentError(
            f"portal refused enrolment ({response.status_code}): {_detail(response)}"
        )
    try:
        answer = _Answer.model_validate_json(response.content)
        parse_public_key(answer.config_signing_key)
    except (ValidationError, DocumentError) as exc:
        raise EnrolmentError(f"portal's enrolment answer is unusable: {exc}") from None

    config_path.parent.mkdir(parents=True, exist_ok=True)
    _write_new(token_path, answer.token + "\n", mode=0o600)
    lines = [
        "# Written by `fleetmeter collector enroll`. Ranges and intervals come from the portal;",
        "# keys set here (and [[ranges]] with a name, for credentials) are documented in",
        "# docs/collector.md.",
        "[portal]",
        f"url = {_toml_string(portal.url)}",
        f"token_file = {_toml_string(TOKEN_FILE)}",
        f"signing_key = {_toml_string(answer.config_signing_key)}",
        f"collector_id = {_toml_string(str(answer.collector_id))}",
    ]
    if ca_file is not None:
        lines.append(f"ca_file = {_toml_string(str(ca_file.resolve()))}")
    if allow_insecure_http:
        lines.append("allow_insecure_http = true")
    lines += ["", "[collector]", f"data_dir = {_toml_string(data_dir)}"]
    if name:
        lines.append(f"name = {_toml_string(name)}")
    _write_new(config_path, "\n".join(lines) + "\n", mode=0o644)
    return Enrolled(
        collector_id=answer.collector_id,
        reseller=answer.reseller,
        customer=answer.customer,
        config=config_path,
        token_file=token_path,
    )


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail)[:300] if detail else response.reason_phrase


def _write_new(path: Path, text: str, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
