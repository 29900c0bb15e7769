"""Read one spec file (YAML or JSON) into plain data with the position of every node.

Both formats produce the same thing: a ``LoadedFile`` whose ``data`` is made of
dicts, lists, str, int, float, bool and None, and whose ``positions`` map the
JSON pointer of every node to the line and column (1-based) where it starts, and
of every mapping key to where the key starts. Problems come back as diagnostics,
never as exceptions.

YAML is read from PyYAML's event stream rather than its composer, for three
reasons. The composer recurses once per nesting level, so a deeply nested file
would raise ``RecursionError``; it keeps the last of two duplicate keys without a
word; and it resolves scalars by YAML 1.1, where ``no`` and ``on`` are booleans.
Here nesting is an explicit stack with a limit, a duplicate key is an error, and
plain scalars are resolved by the YAML 1.2 core schema (only ``true``/``false``
are booleans), which is also what JSON means.

JSON is read by a small scanner because the standard ``json`` module reports
neither positions nor duplicate keys.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compiler.diagnostics import Diagnostic

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000
# Python refuses to convert integers of more than 4300 digits to text, so a
# longer number would fail later, when the plan is written.
MAX_NUMBER_LENGTH = 100

_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
         "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

try:  # the C parser is much faster; the pure-Python one gives the same events
    _YAML_LOADER: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _YAML_LOADER = yaml.SafeLoader


@dataclass
class LoadedFile:
    """A parsed spec file: its data and the position of each node."""

    path: str
    data: Any = None
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    text: str = ""


def escape_pointer_token(token: str | int) -> str:
    text = token if isinstance(token, str) else str(token)
    if "~" not in text and "/" not in text:  # almost every name; skips two copies
        return text
    return text.replace("~", "~0").replace("/", "~1")


def join_pointer(pointer: str, token: str | int) -> str:
    return f"{pointer}/{escape_pointer_token(token)}"


def _error(loaded: LoadedFile, code: str, message: str, line: int, column: int,
           hint: str | None, pointer: str = "") -> None:
    loaded.diagnostics.append(
        Diagnostic("error", code, message, loaded.path, line, column, pointer, hint)
    )


class _LineIndex:
    """Line and column of text offsets, in O(log lines) per lookup."""

    def __init__(self, text: str) -> None:
        # Scanning from the start for each node would be quadratic on a large
        # file written on one line.
        self.starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def line_column(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def load_file(path: Path, display: str) -> LoadedFile:
    """Read and parse one spec file; ``display`` is the name shown in diagnostics."""
    loaded = LoadedFile(display)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        _error(loaded, "E001", f"cannot read {display!r}: {exc.strerror or exc}", 1, 1,
               "check that the file exists and is readable")
        return loaded
    return load_bytes(raw, display, is_json=path.suffix.lower() == ".json", into=loaded)


def load_bytes(raw: bytes, display: str, *, is_json: bool,
               into: LoadedFile | None = None) -> LoadedFile:
    """Parse the bytes of one spec file; see ``load_file``."""
    loaded = into or LoadedFile(display)
    if len(raw) > MAX_FILE_BYTES:
        size_mib = len(raw) / (1024 * 1024)
        _error(loaded, "E009",
               f"file is {size_mib:.1f} MiB, over the {MAX_FILE_BYTES // (1024 * 1024)}"
               " MiB limit for a spec file", 1, 1,
               "split the spec into smaller files with 'include', or check that this"
               " is the file you meant")
        return loaded
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    wide = _wide_encoding(raw)
    if wide:
        _error(loaded, "E002", f"the file is encoded as {wide}, not UTF-8", 1, 1,
               "save the file as UTF-8")
        return loaded
    # Control bytes are ASCII and never part of a multi-byte UTF-8 sequence, so
    # they are found in the raw bytes: a binary file is reported as binary even
    # when it is not valid UTF-8 either.
    control = _CONTROL_BYTES.search(raw)
    if control:
        line, column = _byte_line_column(raw, control.start())
        _error(loaded, "E010",
               f"control character U+{control.group()[0]:04X} is not allowed in a"
               " spec file", line, column,
               "remove it; spec files are text (is this a binary file?)")
        return loaded
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_line_column(raw, exc.start)
        _error(loaded, "E002",
               f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not valid UTF-8",
               line, column, "save the file as UTF-8")
        return loaded
    loaded.text = text
    if not text.strip() or (not is_json and _only_comments(text)):
        _error(loaded, "E007", "the file is empty", 1, 1,
               "write a mapping such as 'version: 1' or remove the file")
        return loaded
    if is_json:
        _JsonScanner(text, loaded).parse()
    else:
        _YamlBuilder(text, loaded).build()
    if loaded.data is None and not loaded.diagnostics:
        line, column = loaded.positions.get("", (1, 1))
        _error(loaded, "E007", "the file contains no data: its only value is null",
               line, column, "write a mapping such as 'version: 1' or remove the file")
    return loaded


def _wide_encoding(raw: bytes) -> str | None:
    """Return the name of a UTF-16 or UTF-32 encoding marked by a byte-order mark."""
    for mark, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                       (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if raw.startswith(mark):
            return name
    return None


def _byte_line_column(raw: bytes, offset: int) -> tuple[int, int]:
    """Return the 1-based line and column, in characters, of a byte offset."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#")
               for line in text.splitlines())


# --- YAML -------------------------------------------------------------------


_NUMBER_HINT = ("write a finite number of ordinary size, or quote the value to keep it"
                " as text; a plan is JSON, which has no infinity or NaN")


def _is_number_text(value: str) -> bool:
    return any(pattern.match(value) for pattern in (_INT, _OCT, _HEX, _FLOAT))


def _clip(text: str) -> str:
    return repr(text) if len(text) <= 20 else repr(text[:17] + "...")


def resolve_plain_scalar(value: str) -> Any:
    """Resolve an unquoted YAML scalar by the YAML 1.2 core schema."""
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value) and any(ch.isdigit() for ch in value):
        return float(value)
    if _INF.match(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.match(value):
        return float("nan")
    return value


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"

_TAGGED = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": lambda text: _BOOL[text],
    "tag:yaml.org,2002:null": lambda text: None,
}


class _Frame:
    __slots__ = ("container", "is_mapping", "pointer", "pending_key", "key_mark",
                 "keys")

    def __init__(self, container: Any, pointer: str) -> None:
        self.container = container
        self.is_mapping = isinstance(container, dict)
        self.pointer = pointer
        self.pending_key: Any = _NO_KEY
        self.key_mark: tuple[int, int] | None = None
        self.keys: dict[Any, tuple[int, int]] = {}


_NO_KEY = object()


class _StopBuilding(Exception):
    pass


class _YamlBuilder:
    def __init__(self, text: str, loaded: LoadedFile, loader: Any = None) -> None:
        self.text = text
        self.loaded = loaded
        self.loader = loader or _YAML_LOADER
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Any] = {}
        self.documents = 0
        self.nodes = 0
        self.root: Any = None

    def build(self) -> None:
        try:
            for event in yaml.parse(self.text, Loader=self.loader):
                self._handle(event)
        except yaml.MarkedYAMLError as exc:
            if (self.loader is not yaml.SafeLoader and exc.problem
                    and "maximum nesting depth" in exc.problem):
                self._rebuild_in_python()
                return
            self._syntax_error(exc)
            return
        except yaml.YAMLError as exc:  # an error without a position
            _error(self.loaded, "E003", f"invalid YAML: {exc}", 1, 1,
                   "check the file's YAML syntax")
            return
        except _StopBuilding:
            return
        self.loaded.data = self.root

    def _rebuild_in_python(self) -> None:
        """Parse again with PyYAML's pure-Python parser to place a nesting error.

        libyaml looks ahead through a flow collection (``[[[...``) and stops at
        its own limit of 1000 levels, before this builder sees the 64th. The
        pure-Python parser hands over each event as it reads it, so the error is
        reported where the 65th level opens, whichever parser PyYAML has.
        """
        self.loaded.positions.clear()
        self.loaded.key_positions.clear()
        self.loaded.diagnostics.clear()
        _YamlBuilder(self.text, self.loaded, yaml.SafeLoader).build()

    def _syntax_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        offset = mark.index if mark else 0
        if 0 <= offset < len(self.text) and self.text[offset] == "\t":
            _error(self.loaded, "E006", "a tab character is used for indentation",
                   line, column, "indent with spaces; YAML does not allow tabs there")
            return
        problem = exc.problem or "invalid YAML"
        if "maximum nesting depth" in problem:
            _error(self.loaded, "E008", "nesting is too deep for the YAML parser",
                   line, column, "flatten the structure; no spec setting nests this"
                   " deep")
            return
        context = f" {exc.context}" if exc.context else ""
        start = exc.context_mark
        if exc.context and start is not None and start is not mark:
            # Name where the unclosed bracket or quote opened; the problem mark is
            # often the end of the file, far from the mistake.
            context += (f" that starts at line {start.line + 1},"
                        f" column {start.column + 1}")
        _error(self.loaded, "E003", f"YAML syntax error: {problem}{context}", line,
               column, "check indentation, colons and closing brackets or quotes near"
               " this position")

    def _position(self, event: Any) -> tuple[int, int]:
        return event.start_mark.line + 1, event.start_mark.column + 1

    def _handle(self, event: Any) -> None:
        # Ordered by how often each event occurs: scalars, then collections.
        if isinstance(event, yaml.ScalarEvent):
            frame = self.stack[-1] if self.stack else None
            if (frame is not None and frame.is_mapping
                    and frame.pending_key is _NO_KEY):
                # A key is a name: 'true:', '12:' and '~:' mean the text written,
                # as they would in JSON, not a boolean, number or null.
                self._check_scalar_tag(event)
                self._add(event.value, event)
            else:
                self._add(self._scalar(event), event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            is_mapping = isinstance(event, yaml.MappingStartEvent)
            self._check_collection_tag(event, _MAP_TAG if is_mapping else _SEQ_TAG)
            container: Any = {} if is_mapping else []
            pointer = self._add(container, event)
            if len(self.stack) >= MAX_DEPTH:
                line, column = self._position(event)
                _error(self.loaded, "E008", f"nesting is deeper than {MAX_DEPTH}"
                       " levels", line, column,
                       "flatten the structure; no spec setting nests this deep",
                       pointer)
                raise _StopBuilding
            self.stack.append(_Frame(container, pointer))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self.stack.pop()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                line, column = self._position(event)
                _error(self.loaded, "E003", f"unknown anchor {event.anchor!r}", line,
                       column, "define the anchor with '&name' before using '*name'")
                raise _StopBuilding
            value = self.anchors[event.anchor]
            if any(frame.container is value for frame in self.stack):
                line, column = self._position(event)
                _error(self.loaded, "E013", f"the alias *{event.anchor} refers to a"
                       " value that contains it", line, column,
                       "remove the alias; a spec value cannot contain itself")
                raise _StopBuilding
            self._count_alias(value, event)
            self._add(value, event, alias=True)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                line, column = self._position(event)
                _error(self.loaded, "E012", "the file holds more than one YAML"
                       " document", line, column,
                       "keep one document per file; split the others into their own"
                       " files and include them")
                raise _StopBuilding

    def _check_collection_tag(self, event: Any, plain_tag: str) -> None:
        if event.tag in (None, "!", plain_tag):
            return
        line, column = self._position(event)
        _error(self.loaded, "E013", f"the YAML tag {event.tag!r} is not supported",
               line, column, "remove the tag; specs use plain mappings and lists")
        raise _StopBuilding

    def _count_alias(self, value: Any, event: Any) -> None:
        """Count the nodes an alias repeats, so an alias bomb hits ``MAX_NODES``."""
        # Every checker after the loader walks the data as a tree, so a value
        # repeated by aliases costs its full size each time it appears.
        budget = MAX_NODES - self.nodes
        pending = [value]
        seen = 0
        while pending and seen <= budget:
            item = pending.pop()
            seen += 1
            if isinstance(item, dict):
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
        self.nodes += seen - 1  # ``_add`` counts the alias node itself
        if seen > budget:
            line, column = self._position(event)
            _error(self.loaded, "E009", f"the file has more than {MAX_NODES} nodes"
                   " once its aliases are expanded", line, column,
                   "use fewer aliases, or split the spec into smaller files")
            raise _StopBuilding

    def _check_scalar_tag(self, event: Any) -> None:
        if event.tag in (None, "!") or event.tag in _TAGGED:
            return
        line, column = self._position(event)
        _error(self.loaded, "E013", f"the YAML tag {event.tag!r} is not supported",
               line, column, "remove the tag; specs use plain values")
        raise _StopBuilding

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        self._check_scalar_tag(event)
        if tag == "!":  # the non-specific tag makes any scalar a string
            return event.value
        if tag:
            convert = _TAGGED[tag]
            try:
                value = convert(event.value)
            except (ValueError, KeyError):
                line, column = self._position(event)
                _error(self.loaded, "E003",
                       f"{_clip(event.value)} is not a valid {tag}",
                       line, column, "fix the value or remove the tag")
                raise _StopBuilding from None
            if isinstance(value, float) and not math.isfinite(value):
                self._invalid_number(event, f"{event.value!r} is not a finite number")
            return value
        if event.style in (None, "") and event.implicit[0]:
            if len(event.value) > MAX_NUMBER_LENGTH and _is_number_text(event.value):
                self._invalid_number(event, f"the number {_clip(event.value)} has more"
                                     f" than {MAX_NUMBER_LENGTH} characters")
            value = resolve_plain_scalar(event.value)
            if isinstance(value, float) and not math.isfinite(value):
                self._invalid_number(event, f"{event.value!r} is not a finite number")
            return value
        return event.value

    def _invalid_number(self, event: Any, message: str) -> None:
        line, column = self._position(event)
        _error(self.loaded, "E105", message, line, column, _NUMBER_HINT)
        raise _StopBuilding

    def _add(self, value: Any, event: Any, alias: bool = False) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            line, column = self._position(event)
            _error(self.loaded, "E009", f"the file has more than {MAX_NODES} nodes",
                   line, column, "split the spec into smaller files")
            raise _StopBuilding
        anchor = getattr(event, "anchor", None)
        if anchor and not alias:
            self.anchors[anchor] = value
        position = self._position(event)
        if not self.stack:
            self.root = value
            self.loaded.positions[""] = position
            return ""
        frame = self.stack[-1]
        if not frame.is_mapping:
            pointer = join_pointer(frame.pointer, len(frame.container))
            frame.container.append(value)
            self.loaded.positions[pointer] = position
            return pointer
        if frame.pending_key is _NO_KEY:
            return self._add_key(frame, value, position)
        key = frame.pending_key
        frame.pending_key = _NO_KEY
        if isinstance(key, _DuplicateKey):
            # The repeated key was reported; its value is parsed and dropped.
            return join_pointer(frame.pointer, key.name) + "~duplicate"
        pointer = join_pointer(frame.pointer, key)
        frame.container[key] = value
        self.loaded.positions[pointer] = position
        return pointer

    def _add_key(self, frame: _Frame, key: Any, position: tuple[int, int]) -> str:
        if isinstance(key, (dict, list)):
            _error(self.loaded, "E013", "a mapping key must be a plain value",
                   *position, "write the key as a plain name", frame.pointer)
            raise _StopBuilding
        if key == "<<":
            _error(self.loaded, "E013", "YAML merge keys ('<<') are not supported",
                   *position, "repeat the settings, or use an anchor for a whole value",
                   frame.pointer)
            raise _StopBuilding
        key = "null" if key is None else key if isinstance(key, str) else str(key)
        if key in frame.keys:
            first_line, first_column = frame.keys[key]
            _error(self.loaded, "E005",
                   f"duplicate key {key!r} (first defined at line {first_line},"
                   f" column {first_column})", *position,
                   "remove one of them; YAML parsers would silently keep the last",
                   join_pointer(frame.pointer, key))
            frame.pending_key = _DuplicateKey(key)
            return frame.pointer
        else:
            frame.keys[key] = position
            self.loaded.key_positions[join_pointer(frame.pointer, key)] = position
        frame.pending_key = key
        return frame.pointer


class _DuplicateKey:
    """A repeated key: its value is parsed, then dropped (the first one is kept)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


# --- JSON -------------------------------------------------------------------

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_CHARACTERS = re.compile(r"[-+0-9.eE]*")


_JSON_NUMBER_HINT = ("write numbers as JSON does, such as 12, -3.5 or 1e3: no leading"
                     " zeros, '+' signs, or '.' without digits on both sides")


class _JsonError(Exception):
    def __init__(self, message: str, offset: int, hint: str,
                 code: str = "E004") -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint
        self.code = code


class _JsonScanner:
    def __init__(self, text: str, loaded: LoadedFile) -> None:
        self.text = text
        self.loaded = loaded
        self.nodes = 0
        self.lines = _LineIndex(text)

    def parse(self) -> None:
        try:
            end, value = self._value(self._skip(0), "", 0)
            end = self._skip(end)
            if end != len(self.text):
                raise _JsonError("unexpected text after the JSON value", end,
                                 "remove it; a JSON file holds one value")
        except _JsonError as exc:
            line, column = self.lines.line_column(exc.offset)
            _error(self.loaded, exc.code, exc.message, line, column, exc.hint)
            return
        self.loaded.data = value

    def _skip(self, offset: int) -> int:
        return _WHITESPACE.match(self.text, offset).end()

    def _value(self, offset: int, pointer: str, depth: int) -> tuple[int, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _JsonError(f"the file has more than {MAX_NODES} nodes", offset,
                             "split the spec into smaller files", code="E009")
        self.loaded.positions[pointer] = self.lines.line_column(offset)
        char = self.text[offset:offset + 1]
        if char in ("{", "["):
            if depth >= MAX_DEPTH:
                raise _JsonError(f"nesting is deeper than {MAX_DEPTH} levels", offset,
                                 "flatten the structure; no spec setting nests this"
                                 " deep", code="E008")
            if char == "{":
                return self._object(offset + 1, pointer, depth + 1)
            return self._array(offset + 1, pointer, depth + 1)
        if char == '"':
            return self._string(offset)
        for literal, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(literal, offset):
                return offset + len(literal), value
        number = _NUMBER.match(self.text, offset)
        if number and number.end() > offset:
            return self._number(number, offset)
        if char in "+." and self.text[offset + 1:offset + 2].isdigit():
            raise _JsonError(f"invalid number starting with {char!r}", offset,
                             _JSON_NUMBER_HINT)
        found = repr(char) if char else "the end of the file"
        raise _JsonError(f"expected a JSON value, found {found}", offset,
                         "check for a missing value, a trailing comma or an unquoted"
                         " string")

    def _number(self, number: re.Match[str], offset: int) -> tuple[int, int | float]:
        text = number.group()
        following = self.text[number.end():number.end() + 1]
        if following and following in "0123456789.eE":
            written = _NUMBER_CHARACTERS.match(self.text, offset).group()
            raise _JsonError(f"invalid number {_clip(written)}", offset,
                             _JSON_NUMBER_HINT)
        if len(text) > MAX_NUMBER_LENGTH:
            raise _JsonError(f"the number {_clip(text)} has more than"
                             f" {MAX_NUMBER_LENGTH} characters", offset, _NUMBER_HINT,
                             code="E105")
        if not (number.group(1) or number.group(2)):
            return number.end(), int(text)
        value = float(text)
        if not math.isfinite(value):
            raise _JsonError(f"the number {_clip(text)} is too large for a finite"
                             " number", offset, _NUMBER_HINT, code="E105")
        return number.end(), value

    def _string(self, offset: int) -> tuple[int, str]:
        try:
            value, end = json.decoder.scanstring(self.text, offset + 1)
        except json.JSONDecodeError as exc:
            # The json module's messages end with "at" and expect a position.
            message = exc.msg.removesuffix(" at").removesuffix(" starting")
            raise _JsonError(f"invalid string: {message}", exc.pos,
                             "close the string, escape quotes and backslashes, and"
                             " write line breaks as \\n") from None
        return end, value

    def _object(self, offset: int, pointer: str, depth: int) -> tuple[int, dict]:
        result: dict[str, Any] = {}
        seen: dict[str, tuple[int, int]] = {}
        offset = self._skip(offset)
        if self.text.startswith("}", offset):
            return offset + 1, result
        while True:
            if not self.text.startswith('"', offset):
                raise _JsonError("expected a quoted key", offset,
                                 "quote every key with double quotes, and remove a"
                                 " trailing comma")
            key_position = self.lines.line_column(offset)
            offset, key = self._string(offset)
            offset = self._skip(offset)
            if not self.text.startswith(":", offset):
                raise _JsonError(f"expected ':' after the key {key!r}", offset,
                                 "separate each key from its value with ':'")
            child = join_pointer(pointer, key)
            # A repeated key's value is parsed under its own pointer, so the
            # positions of the first value (the one kept) are not overwritten.
            where = child + "~duplicate" if key in seen else child
            offset, value = self._value(self._skip(offset + 1), where, depth)
            if key in seen:
                first_line, first_column = seen[key]
                _error(self.loaded, "E005",
                       f"duplicate key {key!r} (first defined at line {first_line},"
                       f" column {first_column})", *key_position,
                       "remove one of them; JSON parsers would silently keep the"
                       " last", child)
            else:
                seen[key] = key_position
                result[key] = value
                self.loaded.key_positions[child] = key_position
            offset = self._skip(offset)
            if self.text.startswith(",", offset):
                offset = self._skip(offset + 1)
                continue
            if self.text.startswith("}", offset):
                return offset + 1, result
            raise _JsonError("expected ',' or '}' in an object", offset,
                             "separate members with commas and close the object")

    def _array(self, offset: int, pointer: str, depth: int) -> tuple[int, list]:
        result: list[Any] = []
        offset = self._skip(offset)
        if self.text.startswith("]", offset):
            return offset + 1, result
        while True:
            offset, value = self._value(offset, join_pointer(pointer, len(result)),
                                        depth)
            result.append(value)
            offset = self._skip(offset)
            if self.text.startswith(",", offset):
                offset = self._skip(offset + 1)
                continue
            if self.text.startswith("]", offset):
                return offset + 1, result
            raise _JsonError("expected ',' or ']' in an array", offset,
                             "separate items with commas and close the array")
