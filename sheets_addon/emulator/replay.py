"""Replay recorded Sheets API traffic (VCR-style cassettes) against the emulator.

A cassette is JSON ``{"interactions": [{"request": {"method", "uri", "body"},
"response": {"status": {"code"}, "body": {"string"}}}]}``, as recorded from
gspread's own test-suite against the live API.  Each interaction is sent, in
order, over HTTP to a fresh emulator through an :class:`EmulatorSession`,
and the emulator's status and JSON body are compared with the recording.

Normalization before comparing:

* ids: the recorded spreadsheet id is mapped to the emulator's when the
  recording creates the file.  ``sheetId``, ``namedRangeId`` and
  ``protectedRangeId`` values are paired the first time both responses show
  them at the same JSON path.  Later requests and responses are rewritten
  with these pairs;
* timestamps: Drive's ``createdTime`` and ``modifiedTime`` are ignored.

An interaction whose endpoint or batchUpdate request kind the emulator lacks
is not sent.  It is reported as unsupported.  A later mismatch in the same
spreadsheet is attributed to a skipped request kind only when every difference
lies in the part of the state that kind changes (``SKIPPED_FOOTPRINTS``), such as
``protectedRanges`` for ``addProtectedRange``.  Any other mismatch is
``"unexplained"``, so a skipped request cannot hide an emulator bug.

Run ``python -m sheets_addon.emulator.replay DIR`` for a summary.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import batch_update
from .routes import resolve_route
from .server import SheetsEmulator
from .state import Store

logger = logging.getLogger(__name__)

ID_KEYS = ("sheetId", "namedRangeId", "protectedRangeId")
TIMESTAMP_KEYS = ("createdTime", "modifiedTime")
UNSUPPORTED_ROUTE_KINDS = ("unknown", "drive.other", "spreadsheets.sheets.copyTo")
UNSUPPORTED_REQUEST = "unsupported request "
# The JSON paths of a response that each skipped request kind can change.
_PROTECTED_RANGES = re.compile(r"\$\.sheets\[[0-9]+\]\.protectedRanges(\[.*)?")
SKIPPED_FOOTPRINTS = {
    "addProtectedRange": _PROTECTED_RANGES,
    "deleteProtectedRange": _PROTECTED_RANGES,
    "autoResizeDimensions": re.compile(
        r"\$\.sheets\[[0-9]+\]\.data\[[0-9]+\]\.(columnMetadata|rowMetadata)"
        r"\[[0-9]+\]\.pixelSize"),
}


@dataclass
class InteractionResult:
    """The outcome of one recorded interaction."""

    cassette: str
    index: int
    method: str
    uri: str
    kind: str
    supported: bool
    matched: bool
    reason: str | None = None
    recorded_status: int | None = None
    emulated_status: int | None = None
    differences: list[str] = field(default_factory=list)


@dataclass
class ReplaySummary:
    """Totals over all cassettes plus every non-matching interaction."""

    results: list[InteractionResult]

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def supported(self) -> int:
        return sum(1 for r in self.results if r.supported)

    @property
    def matching(self) -> int:
        return sum(1 for r in self.results if r.matched)

    @property
    def not_matching(self) -> int:
        return sum(1 for r in self.results if r.supported and not r.matched)

    def reasons(self, supported: bool) -> Counter:
        """Count non-matching (or unsupported) interactions by reason."""
        return Counter(
            r.reason or "unexplained" for r in self.results
            if r.supported == supported and not r.matched
        )

    def format(self) -> str:
        lines = [
            f"interactions: {self.total}",
            f"supported:    {self.supported}",
            f"matching:     {self.matching}",
            f"not matching: {self.not_matching}",
            "",
            "not matching, by reason:",
        ]
        lines += [f"  {count:4d}  {reason}" for reason, count in self.reasons(True).most_common()]
        lines += ["", "unsupported, by reason:"]
        lines += [f"  {count:4d}  {reason}" for reason, count in self.reasons(False).most_common()]
        return "\n".join(lines)


class _IdMap:
    """Pairs of recorded and emulated ids, in both directions."""

    def __init__(self) -> None:
        self.forward: dict[Any, Any] = {}
        self.backward: dict[Any, Any] = {}

    def learn(self, recorded: Any, emulated: Any) -> None:
        if recorded == emulated or recorded in self.forward or emulated in self.backward:
            return
        self.forward[recorded] = emulated
        self.backward[emulated] = recorded


class CassetteReplayer:
    """Replays cassettes one by one against a single emulator."""

    def __init__(self, emulator: SheetsEmulator) -> None:
        self.emulator = emulator
        self.session = emulator.session()

    def close(self) -> None:
        self.session.close()

    def replay_file(self, path: Path) -> list[InteractionResult]:
        cassette = json.loads(path.read_text(encoding="utf-8"))
        spreadsheet_ids = _IdMap()
        object_ids = _IdMap()
        # The request kinds skipped so far, by recorded spreadsheet id.
        tainted: dict[str, list[str]] = {}
        results = []
        for index, interaction in enumerate(cassette.get("interactions", [])):
            result = self._replay_one(path.name, index, interaction, spreadsheet_ids, object_ids, tainted)
            results.append(result)
        return results

    def _replay_one(
        self,
        cassette: str,
        index: int,
        interaction: dict[str, Any],
        spreadsheet_ids: _IdMap,
        object_ids: _IdMap,
        tainted: dict[str, list[str]],
    ) -> InteractionResult:
        request, response = interaction["request"], interaction["response"]
        method = request["method"].upper()
        recorded_uri = request["uri"]
        spreadsheet_key = _spreadsheet_key(recorded_uri)

        # Rewrite the recorded request with the emulator's ids, then skip it
        # when the emulator lacks the endpoint or a batchUpdate request kind.
        uri = _replace_all(recorded_uri, spreadsheet_ids.forward)
        body = _rewrite_body(_text(request.get("body")), spreadsheet_ids.forward, object_ids.forward)
        kind, unsupported_reason = classify(method, uri, body)
        result = InteractionResult(
            cassette, index, method, recorded_uri, kind,
            supported=unsupported_reason is None, matched=False,
            recorded_status=response["status"]["code"],
        )
        if unsupported_reason is not None:
            result.reason = unsupported_reason
            if spreadsheet_key and unsupported_reason.startswith(UNSUPPORTED_REQUEST):
                kinds = unsupported_reason.removeprefix(UNSUPPORTED_REQUEST).split(", ")
                tainted.setdefault(spreadsheet_key, []).extend(kinds)
            return result

        reply = self._send(method, uri, body)
        result.emulated_status = reply.status_code
        recorded_json = _parse(_text((response.get("body") or {}).get("string")))
        emulated_text = self._learn_ids(kind, recorded_json, reply.text, spreadsheet_ids, object_ids)

        emulated_json = _normalize(_parse(emulated_text), object_ids.backward)
        differences = _differences(_normalize(recorded_json, {}), emulated_json)
        if result.recorded_status != reply.status_code:
            differences.insert(0, f"status {result.recorded_status} != {reply.status_code}")
        result.differences = differences[:MAX_DIFFERENCES_SHOWN]
        result.matched = not differences
        if not result.matched:
            result.reason = explain_mismatch(tainted.get(spreadsheet_key or "", []), differences)
        return result

    def _send(self, method: str, uri: str, body: str | None) -> Any:
        headers = {"Content-Type": "application/json"} if body else {}
        data = body.encode("utf-8") if body else None
        return self.session.request(method, uri, data=data, headers=headers)

    @staticmethod
    def _learn_ids(
        kind: str, recorded_json: Any, emulated_text: str, spreadsheet_ids: _IdMap, object_ids: _IdMap
    ) -> str:
        """Pair up new ids from this exchange; return the response with recorded spreadsheet ids."""
        emulated_json = _parse(emulated_text)
        if kind == "drive.files.create" and isinstance(recorded_json, dict) and isinstance(emulated_json, dict):
            spreadsheet_ids.learn(recorded_json.get("id"), emulated_json.get("id"))
        restored_text = _replace_all(emulated_text, spreadsheet_ids.backward)
        if isinstance(recorded_json, (dict, list)):
            _learn_ids(recorded_json, _parse(restored_text), object_ids)
        return restored_text


def classify(method: str, uri: str, body: str | None) -> tuple[str, str | None]:
    """Return ``(kind, reason)``; ``reason`` is set when the emulator lacks it."""
    parts = urlsplit(uri)
    route = resolve_route(Store(), method, parts.path, {}, b"")
    if route.kind in UNSUPPORTED_ROUTE_KINDS:
        return route.kind, f"unsupported endpoint {method} {_endpoint_shape(parts.path)}"
    if route.kind == "spreadsheets.batchUpdate" and body:
        try:
            requests = json.loads(body).get("requests") or []
        except (ValueError, AttributeError):
            return route.kind, None
        missing = sorted({
            kind for kind in (batch_update.request_kind(r) for r in requests)
            if kind is not None and kind not in batch_update.supported_kinds()
        })
        if missing:
            return route.kind, "unsupported request " + ", ".join(missing)
    return route.kind, None


def explain_mismatch(skipped: list[str], differences: list[str]) -> str:
    """Name the reason an interaction differs from its recording.

    The only known cause is an earlier request of kind in ``skipped`` that the
    emulator did not apply to the same spreadsheet, and only when every
    difference lies in the footprint of that one kind. Anything else is
    ``"unexplained"`` and is a bug to fix.
    """
    # Each difference starts with its JSON path, such as "$.sheets[0].merges: ...".
    paths = [difference.split(" ", 1)[0].rstrip(":") for difference in differences]
    for kind in dict.fromkeys(skipped):
        footprint = SKIPPED_FOOTPRINTS.get(kind)
        if footprint is not None and all(footprint.fullmatch(path) for path in paths):
            return f"state depends on skipped request {kind}"
    return "unexplained"


def _endpoint_shape(path: str) -> str:
    segments = path.strip("/").split("/")
    if segments[:3] == ["drive", "v3", "files"] and len(segments) > 3:
        segments[3] = "{id}"
    if segments[:2] == ["v4", "spreadsheets"] and len(segments) > 2:
        segments[2] = "{id}" + ("" if ":" not in segments[2] else ":" + segments[2].split(":", 1)[1])
    return "/" + "/".join(segments)


def _spreadsheet_key(uri: str) -> str | None:
    segments = urlsplit(uri).path.strip("/").split("/")
    if segments[:2] == ["v4", "spreadsheets"] and len(segments) > 2:
        return segments[2].split(":")[0]
    if segments[:3] == ["drive", "v3", "files"] and len(segments) > 3:
        return segments[3]
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _parse(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def _replace_all(text: str | None, mapping: dict[Any, Any]) -> str:
    text = text or ""
    for old, new in mapping.items():
        if isinstance(old, str) and isinstance(new, str):
            text = text.replace(old, new)
    return text


def _rewrite_body(body: str | None, spreadsheet_ids: dict[Any, Any], object_ids: dict[Any, Any]) -> str | None:
    if body is None:
        return None
    body = _replace_all(body, spreadsheet_ids)
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    return json.dumps(_map_ids(parsed, object_ids))


def _map_ids(data: Any, mapping: dict[Any, Any]) -> Any:
    if isinstance(data, dict):
        return {
            key: (mapping.get(value, value) if key in ID_KEYS and not isinstance(value, (dict, list)) else _map_ids(value, mapping))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_map_ids(item, mapping) for item in data]
    return data


def _learn_ids(recorded: Any, emulated: Any, ids: _IdMap) -> None:
    if isinstance(recorded, dict) and isinstance(emulated, dict):
        for key in recorded.keys() & emulated.keys():
            if key in ID_KEYS and not isinstance(recorded[key], (dict, list)):
                ids.learn(recorded[key], emulated[key])
            else:
                _learn_ids(recorded[key], emulated[key], ids)
    elif isinstance(recorded, list) and isinstance(emulated, list):
        for recorded_item, emulated_item in zip(recorded, emulated):
            _learn_ids(recorded_item, emulated_item, ids)


def _normalize(data: Any, backward: dict[Any, Any]) -> Any:
    if isinstance(data, dict):
        return {
            key: (backward.get(value, value) if key in ID_KEYS and not isinstance(value, (dict, list)) else _normalize(value, backward))
            for key, value in data.items()
            if key not in TIMESTAMP_KEYS
        }
    if isinstance(data, list):
        return [_normalize(item, backward) for item in data]
    return data


MAX_DIFFERENCES_SHOWN = 20


def _differences(recorded: Any, emulated: Any, path: str = "$") -> list[str]:
    """List every JSON path where two documents differ."""
    found: list[str] = []
    _diff(recorded, emulated, path, found)
    return found


def _diff(recorded: Any, emulated: Any, path: str, found: list[str]) -> None:
    if isinstance(recorded, dict) and isinstance(emulated, dict):
        for key in sorted(recorded.keys() | emulated.keys()):
            if key not in emulated:
                found.append(f"{path}.{key} missing in emulator (recorded {_short(recorded[key])})")
            elif key not in recorded:
                found.append(f"{path}.{key} unexpected in emulator ({_short(emulated[key])})")
            else:
                _diff(recorded[key], emulated[key], f"{path}.{key}", found)
        return
    if isinstance(recorded, list) and isinstance(emulated, list):
        if len(recorded) != len(emulated):
            found.append(f"{path} length {len(recorded)} != {len(emulated)}: {_short(recorded)} vs {_short(emulated)}")
            return
        for index, (left, right) in enumerate(zip(recorded, emulated)):
            _diff(left, right, f"{path}[{index}]", found)
        return
    both_numbers = all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in (recorded, emulated)
    )
    # JSON has one number type, so 2 and 2.0 are equal; True and 1 are not.
    if recorded != emulated or (type(recorded) is not type(emulated) and not both_numbers):
        found.append(f"{path}: recorded {_short(recorded)} != emulator {_short(emulated)}")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def replay_directory(directory: Path) -> ReplaySummary:
    """Replay every ``*.json`` cassette in ``directory``, each on a fresh emulator."""
    results: list[InteractionResult] = []
    for path in sorted(directory.glob("*.json")):
        with SheetsEmulator(seed=0) as emulator:
            replayer = CassetteReplayer(emulator)
            try:
                results.extend(replayer.replay_file(path))
            finally:
                replayer.close()
    return ReplaySummary(results)


def main(argv: list[str]) -> int:
    """Print the replay summary of a cassette directory; list mismatches with -v."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m sheets_addon.emulator.replay CASSETTE_DIR [-v]")
        return 2
    summary = replay_directory(Path(argv[0]))
    print(summary.format())
    if "-v" in argv:
        for result in summary.results:
            if result.supported and not result.matched:
                print(f"\n{result.cassette}#{result.index} {result.method} {result.uri}\n  reason: {result.reason}")
                for difference in result.differences:
                    print(f"    {difference}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
