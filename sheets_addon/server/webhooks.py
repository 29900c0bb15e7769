"""Webhook intake: vendor signatures, event ids, and the flows an event starts.

A system declares its webhook in the spec::

    webhook:
      signature: hubspot_v3          # or hmac_sha256_hex
      secret: ${env:HUBSPOT_CLIENT_SECRET}
      header: X-Signature            # hmac_sha256_hex only
      event_id: eventId              # dotted path in each event (the default)
      event_type: subscriptionType   # dotted path (the default)

Signature schemes:

- ``hubspot_v3``: ``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(secret,
  method + URI + body + timestamp)), with the millisecond timestamp of
  ``X-HubSpot-Request-Timestamp``; requests older than 5 minutes are rejected.
  Sources: HubSpot's "Validating requests" page
  (developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation)
  and ``hubspot/utils/signature.py`` of HubSpot's hubspot-api-python client
  (source string and 300 s window). The URI is the full URL HubSpot called,
  with the percent-escapes of reserved characters decoded.
- ``hmac_sha256_hex``: the configured header is the hex HMAC-SHA256 of the raw
  body, optionally prefixed ``sha256=``. There is no timestamp, so replays are
  stopped only by the event id check.

A body is one JSON event or a JSON array of events (HubSpot batches up to 100).
Each event id is recorded once per system, so a delivery the vendor repeats
starts no second run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compiler.plan import Plan
from sheets_addon.server.store import Event

logger = logging.getLogger(__name__)

SIGNATURE_SCHEMES = ("hubspot_v3", "hmac_sha256_hex")
HUBSPOT_SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
HUBSPOT_WINDOW_MS = 5 * 60 * 1000
MAX_EVENTS = 1000
# NOTE: HubSpot's page lists percent-escapes of the URI to decode before
# signing; its table was cut off in the copy read here, so this list is unverified.
_HUBSPOT_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!",
                    "%24": "$", "%27": "'", "%28": "(", "%29": ")", "%2A": "*",
                    "%2C": ",", "%3B": ";"}


class WebhookRejected(Exception):
    """The delivery is rejected; ``status`` is the HTTP status of the response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class WebhookConfig:
    """The webhook settings of one system, with the spec's defaults applied."""

    system: str
    signature: str
    secret: str
    """A ${env:NAME} or ${file:PATH} reference, resolved per request."""
    header: str = "X-Signature"
    event_id: str = "eventId"
    event_type: str = "subscriptionType"


def webhook_configs(plan: Plan) -> dict[str, WebhookConfig]:
    """Return the webhook settings of every system that declares one."""
    configs = {}
    for system in plan.systems.values():
        spec = system.settings.get("webhook")
        if not isinstance(spec, Mapping):
            continue
        configs[system.id] = WebhookConfig(
            system=system.id, signature=str(spec.get("signature")),
            secret=str(spec.get("secret", "")),
            header=str(spec.get("header", "X-Signature")),
            event_id=str(spec.get("event_id", "eventId")),
            event_type=str(spec.get("event_type", "subscriptionType")))
    return configs


def verify_signature(config: WebhookConfig, secret: str, *, method: str, uri: str,
                     body: bytes, headers: Mapping[str, str],
                     now_ms: int | None = None) -> None:
    """Raise ``WebhookRejected`` (401) unless the delivery is signed with ``secret``.

    An unknown signature scheme raises it with 503, because the server's
    settings are wrong, not the delivery.
    """
    if config.signature == "hubspot_v3":
        _verify_hubspot_v3(secret, method, uri, body, headers,
                           now_ms if now_ms is not None else int(time.time() * 1000))
    elif config.signature == "hmac_sha256_hex":
        _verify_hex(config.header, secret, body, headers)
    else:
        raise WebhookRejected(503, "webhook_misconfigured",
                              f"system {config.system!r} declares the unknown"
                              f" signature scheme {config.signature!r}")


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes,
                         timestamp: str) -> str:
    """Return the v3 signature HubSpot would send for this request."""
    source = (method.upper() + decode_hubspot_uri(uri)
              + body.decode("utf-8", errors="replace") + timestamp)
    digest = hmac.new(secret.encode("utf-8"), source.encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def decode_hubspot_uri(uri: str) -> str:
    """Decode the percent-escapes HubSpot decodes before signing a URI."""
    decoded = []
    index = 0
    while index < len(uri):
        escape = uri[index:index + 3].upper()
        if escape in _HUBSPOT_DECODED:
            decoded.append(_HUBSPOT_DECODED[escape])
            index += 3
        else:
            decoded.append(uri[index])
            index += 1
    return "".join(decoded)


def _verify_hubspot_v3(secret: str, method: str, uri: str, body: bytes,
                       headers: Mapping[str, str], now_ms: int) -> None:
    signature = headers.get(HUBSPOT_SIGNATURE_HEADER)
    timestamp = headers.get(HUBSPOT_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRejected(401, "invalid_signature",
                              f"missing {HUBSPOT_SIGNATURE_HEADER} or"
                              f" {HUBSPOT_TIMESTAMP_HEADER}; this endpoint takes"
                              " HubSpot's v3 signed requests only")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise WebhookRejected(401, "invalid_signature",
                              f"{HUBSPOT_TIMESTAMP_HEADER} {timestamp[:40]!r} is not"
                              " a millisecond timestamp") from None
    if abs(now_ms - sent_ms) > HUBSPOT_WINDOW_MS:
        raise WebhookRejected(401, "stale_timestamp",
                              f"{HUBSPOT_TIMESTAMP_HEADER} is {abs(now_ms - sent_ms)}"
                              " ms away from the server clock; requests older than"
                              " 5 minutes are rejected")
    expected = hubspot_v3_signature(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode("ascii"),
                               signature.strip().encode("utf-8", "replace")):
        raise WebhookRejected(401, "invalid_signature",
                              f"the {HUBSPOT_SIGNATURE_HEADER} signature does not"
                              " match; check the app's client secret and the"
                              " public URL the server is configured with")


def _verify_hex(header: str, secret: str, body: bytes,
                headers: Mapping[str, str]) -> None:
    presented = (headers.get(header) or "").strip()
    if presented.lower().startswith("sha256="):
        presented = presented[len("sha256="):]
    if not presented:
        raise WebhookRejected(401, "invalid_signature",
                              f"missing the {header} signature header")
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"),
                               presented.lower().encode("utf-8", "replace")):
        raise WebhookRejected(401, "invalid_signature",
                              f"the {header} signature does not match the body;"
                              " check the shared secret")


def parse_events(config: WebhookConfig, body: bytes) -> list[Event]:
    """Return the events of a delivery; raise ``WebhookRejected`` (400) when malformed."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRejected(400, "invalid_json",
                              f"the body is not valid JSON: {exc}") from None
    items = document if isinstance(document, list) else [document]
    if not items or len(items) > MAX_EVENTS:
        raise WebhookRejected(400, "invalid_body",
                              f"a delivery carries 1 to {MAX_EVENTS} events, not"
                              f" {len(items)}")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise WebhookRejected(400, "invalid_body",
                                  f"event {index} is a {type(item).__name__}, not a"
                                  " JSON object")
        event_id = _dotted(item, config.event_id)
        if event_id is None or isinstance(event_id, (dict, list)) or event_id == "":
            raise WebhookRejected(400, "invalid_body",
                                  f"event {index} has no id at {config.event_id!r};"
                                  " set the system's webhook.event_id to the path"
                                  " of the event id")
        event_type = _dotted(item, config.event_type)
        events.append(Event(str(event_id),
                            None if event_type is None else str(event_type)))
    return events


def _dotted(item: Mapping[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
