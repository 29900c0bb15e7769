"""Number formats: render numbers as Sheets' FORMATTED_VALUE shows them.

Dates and times are numbers too: a serial counts days since 1899-12-30 (so
1900-01-01 is 2) and the fraction is the time of day, as in Sheets.

Supported pattern syntax, a subset of Sheets' number format language:

* numbers: ``0``, ``#``, ``?`` digit placeholders, ``,`` grouping, ``.``
  decimals, ``%`` (multiplies by 100), ``E+00`` scientific, quoted or
  backslash-escaped literals, a second ``;`` section for negatives;
* dates and times: ``yyyy yy mmmm mmm mm m dddd ddd dd d hh h mm ss s``,
  ``AM/PM``, ``am/pm``, ``A/P`` (``m`` means minutes after an hour or before a
  second token, months elsewhere), case-insensitive;
* ``@`` for text.

Cells without a pattern use :func:`format_automatic`, an approximation of
Sheets' automatic format: integers as digits, other numbers rounded to ten
decimal places, very large or very small magnitudes in scientific notation.
Colors, conditional sections (``[Red]``, ``[>100]``) and fractions are
ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re

logger = logging.getLogger(__name__)

EPOCH = dt.datetime(1899, 12, 30)

# en_US defaults Sheets uses when a numberFormat has a type but no pattern.
DEFAULT_PATTERNS = {
    "TEXT": "@",
    "NUMBER": "#,##0.00",
    "PERCENT": "0.00%",
    "CURRENCY": '"$"#,##0.00',
    "DATE": "M/d/yyyy",
    "TIME": "h:mm:ss am/pm",
    "DATE_TIME": "M/d/yyyy H:mm:ss",
    "SCIENTIFIC": "0.00E+00",
}

DATE_TYPES = ("DATE", "TIME", "DATE_TIME")

_DATE_TOKEN = re.compile(
    r"yyyy|yy|mmmmm|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|a/p|\.0+",
    re.IGNORECASE,
)
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def serial_from_datetime(value: dt.datetime) -> float:
    """Convert a naive datetime to a Sheets date serial number."""
    delta = value - EPOCH
    return delta.days + delta.seconds / 86400 + delta.microseconds / 86400e6


def datetime_from_serial(serial: float) -> dt.datetime:
    """Convert a Sheets date serial number to a naive datetime (to the second)."""
    days = math.floor(serial)
    seconds = round((serial - days) * 86400)
    return EPOCH + dt.timedelta(days=days, seconds=seconds)


def pattern_of(number_format: dict | None) -> tuple[str | None, str | None]:
    """Return ``(type, pattern)`` of a numberFormat, filling the type default."""
    if not number_format:
        return None, None
    kind = number_format.get("type")
    pattern = number_format.get("pattern") or DEFAULT_PATTERNS.get(kind or "", None)
    return kind, pattern


def is_date_format(number_format: dict | None) -> bool:
    """Tell whether a numberFormat renders numbers as dates or times."""
    kind, pattern = pattern_of(number_format)
    if kind in DATE_TYPES:
        return True
    return bool(pattern) and kind is None and _looks_like_date_pattern(pattern)


def format_number(value: float, number_format: dict | None) -> str:
    """Render ``value`` with a numberFormat, as FORMATTED_VALUE would."""
    kind, pattern = pattern_of(number_format)
    if not pattern or pattern == "General":
        return format_automatic(value)
    if pattern == "@":
        return format_automatic(value)
    if kind in DATE_TYPES or (kind is None and _looks_like_date_pattern(pattern)):
        return format_date(value, pattern)
    return format_numeric_pattern(value, pattern)


def format_automatic(value: float) -> str:
    """Render a number the way Sheets' automatic format shows it (approximate)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if float(value).is_integer() and magnitude < 1e15:
        return str(int(value))
    if magnitude >= 1e15 or magnitude < 1e-10:
        return _format_scientific(value, 2)
    text = format(round(value, 10), ".15g")
    if "e" in text:
        return _format_scientific(value, 2)
    return text


def _format_scientific(value: float, decimals: int) -> str:
    mantissa, exponent = f"{value:.{decimals}E}".split("E")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}E{sign}{abs(int(exponent)):02d}"


def _looks_like_date_pattern(pattern: str) -> bool:
    stripped = re.sub(r'"[^"]*"|\\.', "", pattern)
    return bool(re.search(r"[yYdDhHsS]|[mM]", stripped)) and not re.search(r"[0#?]", stripped)


def format_date(serial: float, pattern: str) -> str:
    """Render a date serial with a date/time pattern such as ``yyyy-mm-dd``."""
    moment = datetime_from_serial(serial)
    tokens = _tokenize_date_pattern(pattern)
    twelve_hour = any(kind == "ampm" for kind, _ in tokens)
    pieces = []
    for index, (kind, text) in enumerate(tokens):
        if kind == "literal":
            pieces.append(text)
        elif kind == "ampm":
            pieces.append(_render_ampm(moment, text))
        else:
            pieces.append(_render_date_token(moment, text.lower(), tokens, index, twelve_hour))
    return "".join(pieces)


def _tokenize_date_pattern(pattern: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == '"':
            end = pattern.find('"', position + 1)
            end = len(pattern) if end < 0 else end
            tokens.append(("literal", pattern[position + 1 : end]))
            position = end + 1
            continue
        if char == "\\" and position + 1 < len(pattern):
            tokens.append(("literal", pattern[position + 1]))
            position += 2
            continue
        match = _DATE_TOKEN.match(pattern, position)
        if match:
            text = match.group(0)
            kind = "ampm" if "/" in text else "field"
            tokens.append((kind, text))
            position = match.end()
            continue
        tokens.append(("literal", char))
        position += 1
    return tokens


def _render_ampm(moment: dt.datetime, text: str) -> str:
    morning = moment.hour < 12
    if text.lower() == "a/p":
        marker = "A" if morning else "P"
    else:
        marker = "AM" if morning else "PM"
    return marker.lower() if text[0].islower() else marker


def _render_date_token(
    moment: dt.datetime,
    token: str,
    tokens: list[tuple[str, str]],
    index: int,
    twelve_hour: bool,
) -> str:
    if token in ("m", "mm") and _is_minute_context(tokens, index):
        return f"{moment.minute:02d}" if token == "mm" else str(moment.minute)
    hour = moment.hour
    if twelve_hour:
        hour = hour % 12 or 12
    renderers = {
        "yyyy": lambda: f"{moment.year:04d}",
        "yy": lambda: f"{moment.year % 100:02d}",
        "mmmmm": lambda: _MONTHS[moment.month - 1][0],
        "mmmm": lambda: _MONTHS[moment.month - 1],
        "mmm": lambda: _MONTHS[moment.month - 1][:3],
        "mm": lambda: f"{moment.month:02d}",
        "m": lambda: str(moment.month),
        "dddd": lambda: _DAYS[moment.weekday()],
        "ddd": lambda: _DAYS[moment.weekday()][:3],
        "dd": lambda: f"{moment.day:02d}",
        "d": lambda: str(moment.day),
        "hh": lambda: f"{hour:02d}",
        "h": lambda: str(hour),
        "ss": lambda: f"{moment.second:02d}",
        "s": lambda: str(moment.second),
    }
    if token.startswith("."):
        return "." + "0" * (len(token) - 1)
    return renderers[token]()


def _is_minute_context(tokens: list[tuple[str, str]], index: int) -> bool:
    fields = [(i, text.lower()) for i, (kind, text) in enumerate(tokens) if kind == "field"]
    position = [i for i, _ in fields].index(index)
    before = fields[position - 1][1] if position > 0 else ""
    after = fields[position + 1][1] if position + 1 < len(fields) else ""
    return before in ("h", "hh") or after in ("s", "ss")


def format_numeric_pattern(value: float, pattern: str) -> str:
    """Render ``value`` with a numeric pattern such as ``#,##0.00`` or ``0%``."""
    sections = _split_sections(pattern)
    section = sections[0]
    negative = value < 0
    if negative and len(sections) > 1 and sections[1]:
        section = sections[1]
        value = -value
        negative = False
    prefix, core, suffix = _split_core(section)
    if "%" in prefix + suffix:
        value *= 100
    text = _render_core(abs(value) if negative else value, core)
    sign = "-" if negative and _nonzero(text) else ""
    return f"{sign}{prefix}{text}{suffix}"


def _nonzero(text: str) -> bool:
    return any(char in "123456789" for char in text)


def _split_sections(pattern: str) -> list[str]:
    sections, current, quoted = [], [], False
    for char in pattern:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            sections.append("".join(current))
            current = []
            continue
        current.append(char)
    sections.append("".join(current))
    return sections


def _split_core(section: str) -> tuple[str, str, str]:
    """Split a section into literal prefix, numeric core and literal suffix."""
    section = re.sub(r"\[[^\]]*\]", "", section)
    literal_chars: list[tuple[str, bool]] = []
    position = 0
    while position < len(section):
        char = section[position]
        if char == '"':
            end = section.find('"', position + 1)
            end = len(section) if end < 0 else end
            literal_chars.extend((c, True) for c in section[position + 1 : end])
            position = end + 1
            continue
        if char == "\\" and position + 1 < len(section):
            literal_chars.append((section[position + 1], True))
            position += 2
            continue
        literal_chars.append((char, False))
        position += 1
    core_positions = [
        i for i, (c, literal) in enumerate(literal_chars) if not literal and c in "0#?,."
    ]
    if not core_positions:
        return "".join(c for c, _ in literal_chars), "", ""
    first, last = core_positions[0], core_positions[-1]
    text = "".join(c for c, _ in literal_chars)
    exponent = re.match(r"[Ee][+-]0+", text[last + 1 :])
    core_end = last + 1 + (exponent.end() if exponent else 0)
    return text[:first], text[first:core_end], text[core_end:]


def _render_core(value: float, core: str) -> str:
    if core == "":
        return ""
    exponent_match = re.search(r"[Ee]([+-])(0+)$", core)
    mantissa_core = core[: exponent_match.start()] if exponent_match else core
    integer_part, _, decimal_part = mantissa_core.partition(".")
    min_decimals = decimal_part.count("0")
    max_decimals = sum(decimal_part.count(c) for c in "0#?")
    grouping = "," in integer_part
    min_integer_digits = integer_part.count("0")
    if exponent_match:
        return _render_scientific(value, min_integer_digits, max_decimals, exponent_match)
    rounded = round(value, max_decimals)
    text = f"{abs(rounded):.{max_decimals}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(min_decimals, "0") if max_decimals else ""
    whole = whole.lstrip("0")
    whole = whole.rjust(min_integer_digits, "0")
    if grouping and whole:
        whole = f"{int(whole):,}"
    sign = "-" if rounded < 0 else ""
    return f"{sign}{whole}.{fraction}" if fraction or (decimal_part and min_decimals) else f"{sign}{whole}"


def _render_scientific(value: float, integer_digits: int, decimals: int, match: re.Match) -> str:
    mantissa, exponent = f"{value:.{decimals}E}".split("E")
    exponent_value = int(exponent)
    sign = ""
    if exponent_value < 0:
        sign = "-"
    elif match.group(1) == "+":
        sign = "+"
    width = len(match.group(2))
    return f"{mantissa}E{sign}{abs(exponent_value):0{width}d}"
