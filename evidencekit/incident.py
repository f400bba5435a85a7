"""The incident record: what happened, in the victim's own words, kept inside the encrypted bag.

One model, three ways in: a YAML file (``--incident incident.yaml``), command-line flags, or the
guided session. All of them go through :func:`from_input`, which validates every field and names
the field in its error ("losses[0].currency: 'EURO' is not an ISO 4217 currency code …"). The
stored form is ``bag/evidencekit/incident.json`` (canonical JSON, docs/FORMAT.md §4.5); reading it
back (:func:`from_json`) validates it again, strictly.

Later additions made with ``evidencekit note`` are signed custody "note" events whose ``details``
follow :func:`note_details`; :func:`notes_from_events` reads them back for the report. With
``--private`` the same details and text are an addendum inside the payload (evidencekit.addenda),
read by :func:`note_from_details` and checked strictly by :func:`check_note`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from evidencekit import amounts, canonical
from evidencekit.clock import rfc3339
from evidencekit.errors import BundleError, InputError, UsageError
from evidencekit.format.documents import CustodyEvent

if TYPE_CHECKING:
    import yaml

INCIDENT_DOC_TYPE = "evidencekit.incident"
INCIDENT_VERSION = 1

# key → label for people (short enough for a table cell)
INCIDENT_TYPES: dict[str, str] = {
    "phishing": "Phishing",
    "online-fraud": "Online fraud / payment scam",
    "account-takeover": "Account takeover",
    "ransomware-extortion": "Ransomware / extortion",
    "harassment": "Harassment",
    "identity-theft": "Identity theft",
    "other": "Other",
}

IDENTIFIER_KINDS: dict[str, str] = {
    "phone": "Phone number",
    "email": "Email address",
    "url": "Web address",
    "account": "Account number",
    "iban": "IBAN",
    "wallet": "Wallet address",
    "transaction": "Transaction reference",
    "username": "User name or profile",
    "other": "Other",
}

NOTE_KINDS = ("note", "timeline", "identifier", "loss")

# ISO 4217 codes in use, plus a few recently withdrawn ones a loss may still be stated in.
_ISO_4217_TABLE = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU
MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XCD XCG XDR XOF XPD
XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
"""
ISO_4217 = frozenset(_ISO_4217_TABLE.split())

MAX_TEXT = 100_000  # characters in one text field; a narrative, not a file
MAX_ITEMS = 10_000  # entries in one list

_ISO_WITH_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?(Z|[+-]\d{2}:\d{2})$")
_HUMAN_TIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ]+(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})"
    r"(?:\.(?P<f>\d{1,6}))?)?\s*(?P<off>Z|[+-]\d{2}:?\d{2})?(?:\s+(?P<zone>[A-Za-z][\w/+-]*))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# 14.11.2026 (day.month.year, as much of Europe writes it), alone or before a time
_DOTTED_DATE = re.compile(r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})\.?(?:,?\s+|$)")
_AMOUNT = re.compile(r"^(0|[1-9]\d{0,17})(\.\d{1,8})?$", re.ASCII)  # 0-9, as the schema's \d
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]{3,40}$")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)?[^\s/]+\.[^\s/]+(/\S*)?$")
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")


class IncidentError(InputError):
    """The incident record (YAML, flags or stored JSON) has a field that is missing or wrong."""

    def __init__(self, message: str, *, hint: str | None = None, field: str = "",
                 problem: str = "") -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.problem = problem or message


def _fail(where: str, problem: str, hint: str | None = None) -> IncidentError:
    # A command-line option is named as typed ("--started: …"), a record field as a field.
    place = where if where.startswith("--") else f"incident record, field '{where}'"
    return IncidentError(f"{place}: {problem}", hint=hint, field=where, problem=problem)


# ----------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class Moment:
    """A time as the person gave it (ISO 8601 with its UTC offset) and the same instant in UTC,
    or a day alone when that is all the person knows (``local`` 2026-11-14, ``utc`` None)."""

    local: str  # e.g. 2026-11-16T14:05:00+01:00, or 2026-11-16 for a date without a time
    utc: str | None  # e.g. 2026-11-16T13:05:00.000000000Z (docs/FORMAT.md conventions)

    @property
    def date_only(self) -> bool:
        return self.utc is None

    @property
    def sort_key(self) -> str:
        """For putting moments in order: a day alone comes before the times of that day."""
        return self.local if self.utc is None else self.utc

    def to_json(self) -> dict[str, str | None]:
        return {"time": self.local, "time_utc": self.utc}


@dataclass(frozen=True)
class TimelineEntry:
    moment: Moment
    description: str

    def to_json(self) -> dict[str, str | None]:
        return {**self.moment.to_json(), "description": self.description}


@dataclass(frozen=True)
class Identifier:
    kind: str
    value: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # every field, under its own name


@dataclass(frozen=True)
class Loss:
    amount: str  # a decimal number as text: canonical JSON holds no floats
    currency: str  # ISO 4217
    date: str | None = None  # YYYY-MM-DD
    institution: str = ""
    reference: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # every field, under its own name


@dataclass(frozen=True)
class Incident:
    incident_type: str | None = None
    description: str = ""
    time_zone: str = ""  # the IANA zone times were entered in, when one was named
    started: Moment | None = None
    noticed: Moment | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    identifiers: tuple[Identifier, ...] = ()
    losses: tuple[Loss, ...] = ()
    affected_accounts: tuple[str, ...] = ()
    affected_devices: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == Incident(time_zone=self.time_zone)

    @property
    def type_label(self) -> str:
        return INCIDENT_TYPES.get(self.incident_type or "", "not stated")

    def to_document(self) -> dict[str, Any]:
        return {
            "type": INCIDENT_DOC_TYPE,
            "format_version": INCIDENT_VERSION,
            "incident_type": self.incident_type,
            "description": self.description,
            "time_zone": self.time_zone,
            "started": self.started.to_json() if self.started else None,
            "noticed": self.noticed.to_json() if self.noticed else None,
            "timeline": [e.to_json() for e in self.timeline],
            "identifiers": [i.to_json() for i in self.identifiers],
            "losses": [loss.to_json() for loss in self.losses],
            "affected_accounts": list(self.affected_accounts),
            "affected_devices": list(self.affected_devices),
        }

    def to_json(self) -> bytes:
        """The bytes of ``bag/evidencekit/incident.json``."""
        return canonical.dumps(self.to_document())


_DOC_KEYS = {"type", "format_version", "incident_type", "description", "time_zone", "started",
             "noticed", "timeline", "identifiers", "losses", "affected_accounts",
             "affected_devices"}
INPUT_KEYS = _DOC_KEYS - {"type", "format_version"}


# ----------------------------------------------------------------------------- field validators
def _text(value: Any, where: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    if value is None:
        value = ""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _fail(where, "must be text")
    text = str(value).strip()
    if required and not text:
        raise _fail(where, "is empty")
    if len(text) > limit:
        raise _fail(where, f"is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise _fail(where, "contains control characters")
    return text


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "must be a list")
    if len(value) > MAX_ITEMS:
        raise _fail(where, f"has more than {MAX_ITEMS} entries")
    return value


def _mapping(value: Any, where: str, known: Iterable[str], required: Iterable[str] = ()
             ) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be a mapping (key: value lines)")
    keys = set(known)
    for key in value:
        if key not in keys:
            raise _fail(f"{where}.{key}" if where else str(key), "unknown field",
                        hint=f"known fields here: {', '.join(sorted(keys))}")
    for key in required:
        if value.get(key) in (None, ""):
            raise _fail(f"{where}.{key}" if where else key, "is missing")
    return value


def zone_named(name: str, where: str = "time_zone") -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(where, f"{name!r} is not a known time zone",
                    hint="use a name such as Europe/Berlin or America/New_York, or write the "
                    "offset in each time (+01:00)") from None


def local_zone() -> tuple[dt.tzinfo, str]:
    """This computer's time zone, by IANA name when it can be found (DST-correct for any date)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            name = Path("/etc/timezone").read_text("utf-8").strip()
        except OSError:
            target = os.path.realpath("/etc/localtime")
            name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
    if name:
        try:
            return zone_named(name), name
        except IncidentError:
            pass
    return dt.datetime.now().astimezone().tzinfo or dt.timezone.utc, ""


def parse_moment(value: Any, where: str, default_zone: dt.tzinfo | None = None) -> Moment:
    """A time typed by a person: ``2026-11-16 14:05``, ``…T14:05:00+01:00``, ``… Europe/Berlin``,
    or a date alone (``2026-11-16``) when the time of day is not known.

    Without an offset or zone name in the text, *default_zone* is used; without that either, the
    time is refused (a time without a zone is ambiguous by hours). A date alone needs no zone: it
    is the day on the person's calendar, and stays exactly that.
    """
    typed = _text(value.isoformat() if isinstance(value, dt.date) else value, where,
                  required=True)
    text = iso_date_first(typed)  # messages quote what was typed ('31.02.2026', not 2026-02-31)
    if _DATE.match(text):
        return _day(text, where, typed)
    match = _HUMAN_TIME.match(text)
    if not match:
        raise _fail(where, f"{typed!r} is not a date and time",
                    hint="write it as YYYY-MM-DD HH:MM, e.g. 2026-11-16 14:05 (or 16.11.2026 "
                    "14:05), or just the date (2026-11-16) if you don't know the time; add "
                    "+01:00 or a zone name such as Europe/Berlin if it is not your local time")
    try:
        naive = dt.datetime.strptime(f"{match['date']} {int(match['h']):02d}:{match['m']}:"
                                     f"{match['s'] or '00'}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise _fail(where, f"{typed!r} is not a valid date and time") from None
    fraction = match["f"] or ""
    naive = naive.replace(microsecond=int((fraction + "000000")[:6]))
    offset = match["off"]
    if offset and match["zone"]:
        raise _fail(where, f"{typed!r} has both an offset and a zone name; give one")
    if offset:
        if offset == "Z":
            zone: dt.tzinfo = dt.timezone.utc
        else:
            digits = offset.replace(":", "")
            minutes = int(digits[1:3]) * 60 + int(digits[3:5])
            if minutes >= 24 * 60 or int(digits[3:5]) >= 60:
                raise _fail(where, f"{typed!r} has an impossible UTC offset")
            zone = dt.timezone(dt.timedelta(minutes=-minutes if digits[0] == "-" else minutes))
    elif match["zone"]:
        zone = zone_named(match["zone"], where)
    elif default_zone is not None:
        zone = default_zone
    else:
        raise _fail(where, f"{typed!r} has no time zone",
                    hint="add the offset (e.g. 2026-11-16 14:05 +01:00) or a zone name, or set "
                    "time_zone: Europe/Berlin for the whole record")
    aware = naive.replace(tzinfo=zone)
    local = aware.isoformat(timespec="microseconds" if fraction else "seconds")
    local = local.replace("+00:00", "Z") if offset == "Z" else local
    return Moment(local, _utc_of(aware, fraction))


def iso_date_first(text: str) -> str:
    """'14.11.2026 14:05' → '2026-11-14 14:05': a day.month.year date with dots (unambiguous:
    nobody writes month.day.year with dots) rewritten as ISO 8601; anything else unchanged."""
    match = _DOTTED_DATE.match(text)
    if match is None:
        return text
    rest = text[match.end():]
    iso = f"{match['y']}-{int(match['m']):02d}-{int(match['d']):02d}"
    return f"{iso} {rest}" if rest else iso


def _day(text: str, where: str, typed: str | None = None) -> Moment:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise _fail(where, f"{typed or text!r} is not a valid date") from None
    # No UTC instant: converting a day to UTC would invent a time of day (and shift the date).
    return Moment(text, None)


def human_time(moment: Moment) -> str:
    """'2026-11-16 14:05 (UTC+01:00)': the time as entered, readable; a date alone as the date."""
    local = moment.local
    if moment.date_only:
        return local
    offset = "UTC" if local.endswith("Z") else "UTC" + local[-6:]
    clock = local[11:19]
    clock = clock[:5] if clock.endswith(":00") else clock
    return f"{local[:10]} {clock} ({offset})"


def _utc_of(aware: dt.datetime, fraction: str) -> str:
    seconds = int(aware.replace(microsecond=0).timestamp())
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return rfc3339(seconds * 1_000_000_000 + nanos)


def _amount(value: Any, where: str, typed: bool) -> str:
    """An amount typed by a person (*typed*: any unambiguous form, evidencekit.amounts), or one
    read back from a bundle (digits, optional '.' and decimals, exactly as stored)."""
    if isinstance(value, bool) or value is None:
        raise _fail(where, "is missing" if value is None else "must be a number")
    text = str(value).strip()
    if typed:
        try:
            return amounts.parse_amount(text)
        except amounts.AmountError as exc:
            raise _fail(where, exc.message, hint=exc.hint) from None
    if text.startswith("-"):
        raise _fail(where, f"{text!r} is negative", hint="write a loss as a positive amount")
    if not _AMOUNT.match(text):
        raise _fail(where, f"{text!r} is not an amount",
                    hint="write digits with a dot for decimals and no thousands separator, "
                    "e.g. 1499.90")
    return text


class AmbiguousMoney(IncidentError):
    """An amount that reads two ways ('1.250 €'): both readings, for a person to choose from."""

    def __init__(self, found: amounts.AmbiguousAmount, where: str) -> None:
        place = where if where.startswith("--") else f"incident record, field '{where}'"
        super().__init__(f"{place}: {found.message}", hint=found.hint, field=where,
                         problem=found.message)
        self.text = found.text
        self.readings = (found.thousands, found.decimal)
        self.currency = found.currency


def money(text: str, where: str) -> amounts.Money:
    """An amount with its currency as a person typed it ('1.250,00 €', 'EUR 1,250.00'), the
    currency checked. Raises AmbiguousMoney for a form that reads two ways ('1.250 €'), for
    the caller to ask about or refuse; IncidentError for anything else wrong."""
    try:
        found = amounts.parse_money(text)
    except amounts.AmbiguousAmount as exc:
        raise AmbiguousMoney(exc, where) from None
    except amounts.AmountError as exc:
        raise _fail(where, exc.message, hint=exc.hint) from None
    return dataclasses.replace(found, currency=_currency(found.currency, f"{where}.currency"))


def reading(ambiguous: AmbiguousMoney, choice: int, where: str) -> amounts.Money:
    """The money *ambiguous* stands for, read the way a person chose (1: the first of its
    ``readings``, with thousands separators; 2: the second, with a decimal mark)."""
    return money(f"{ambiguous.readings[choice - 1]} {ambiguous.currency}", where)


def loss_date(text: str, where: str = "loss") -> str | None:
    """The date of a loss as a person typed it (YYYY-MM-DD or DD.MM.YYYY), as stored; None for
    none. The error names the field ``{where}.date``."""
    return _date(text, f"{where}.date", typed=True)


def parse_loss_spec(spec: str, option: str = "--loss") -> Loss:
    """A loss written on one line, 'AMOUNT CURRENCY; DATE; INSTITUTION; REFERENCE' (capture's
    --loss): the amount in any unambiguous form, the rest optional."""
    parts = [part.strip() for part in spec.split(";")]
    if len(parts) > 4:
        raise IncidentError(f"{option} {spec!r}: at most four parts separated by ';'",
                            hint="AMOUNT CURRENCY; DATE; INSTITUTION; REFERENCE")
    try:
        found = money(parts[0], option)
    except IncidentError as exc:
        raise IncidentError(f"{option} {spec!r}: {exc.problem}",
                            hint=exc.hint or f"e.g. {option} '499.90 EUR; 2026-11-16; Example "
                            "Bank; TX-4411'") from None
    fields = dict(zip(("date", "institution", "reference"), parts[1:], strict=False))
    return loss({"amount": found.amount, "currency": found.currency, **fields}, option)


def _currency(value: Any, where: str) -> str:
    text = _text(value, where, required=True).upper()
    if text not in ISO_4217:
        raise _fail(where, f"{text!r} is not an ISO 4217 currency code",
                    hint="three letters such as EUR, USD, GBP, CHF; for crypto-assets give the "
                    "value in money and the coin amount in the description")
    return text


def _date(value: Any, where: str, typed: bool = False) -> str | None:
    if value is None or value == "":
        return None
    written = value.isoformat() if isinstance(value, dt.date) else _text(value, where)
    text = iso_date_first(written) if typed else written
    try:
        if not _DATE.match(text):
            raise ValueError
        dt.date.fromisoformat(text)
    except ValueError:
        raise _fail(where, f"{written!r} is not a date",
                    hint="write it as YYYY-MM-DD or DD.MM.YYYY") from None
    return text


def _identifier_value(kind: str, value: str, where: str) -> str:
    checks = {"email": (_EMAIL, "an email address"), "phone": (_PHONE, "a phone number"),
              "url": (_URL, "a web address")}
    if kind in checks and not checks[kind][0].match(value):
        raise _fail(where, f"{value!r} does not look like {checks[kind][1]}",
                    hint="check it, or use kind 'other'")
    if kind == "iban":
        compact = value.replace(" ", "").upper()
        if not _IBAN.match(compact) or _iban_mod97(compact) != 1:
            raise _fail(where, f"{value!r} is not a valid IBAN (its check digits do not match)",
                        hint="check it, or use kind 'account'")
    return value


def _iban_mod97(iban: str) -> int:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97


def looks_like_iban(value: str) -> bool:
    """Shaped like an IBAN (country, check digits, account), whether or not its digits check."""
    return _IBAN.fullmatch(value.replace(" ", "").upper()) is not None


def guess_identifier_kind(value: str) -> str:
    """The kind a value typed by a person looks like ('email', 'iban', …, else 'other'): an
    IBAN only when its check digits match."""
    text = value.strip()
    if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        return "email"
    if looks_like_iban(text):
        try:
            identifier({"kind": "iban", "value": text}, "value")
            return "iban"
        except IncidentError:
            pass
    if re.fullmatch(r"(0x[0-9a-fA-F]{40}|bc1[0-9a-z]{20,80}|[13][1-9A-HJ-NP-Za-km-z]{25,34}|"
                    r"T[1-9A-HJ-NP-Za-km-z]{33})", text):
        return "wallet"
    if re.fullmatch(r"(https?://|www\.)\S+|[\w-]+(\.[\w-]+)+(/\S*)?", text, re.IGNORECASE):
        return "url"
    if re.fullmatch(r"\+?[\d\s().\-/]{6,40}", text) and sum(c.isdigit() for c in text) >= 6:
        return "phone"
    if text.startswith("@"):
        return "username"
    return "other"


def guessed_identifier(value: str) -> Identifier:
    """*value* as the kind it looks like; kept as 'other' when it is not valid as that kind."""
    try:
        return identifier({"kind": guess_identifier_kind(value), "value": value}, "value")
    except IncidentError:
        return Identifier("other", value)


def kind_label(kind: str) -> str:
    """'phone number', 'IBAN': an identifier kind's label inside a sentence (acronyms kept)."""
    label = IDENTIFIER_KINDS[kind]
    first, _, rest = label.partition(" ")
    return label if first.isupper() else f"{first.lower()} {rest}".strip()


def _kind(value: Any, where: str, allowed: Mapping[str, str] | tuple[str, ...]) -> str:
    text = _text(value, where, required=True).lower().replace(" ", "-").replace("_", "-")
    if text not in allowed:
        raise _fail(where, f"{text!r} is not one of: {', '.join(allowed)}")
    return text


def incident_type(value: Any, where: str = "incident_type") -> str | None:
    if value is None or value == "":
        return None
    text = _text(value, where).lower().replace(" ", "-").replace("_", "-")
    aliases = {"fraud": "online-fraud", "payment-scam": "online-fraud", "scam": "online-fraud",
               "ransomware": "ransomware-extortion", "extortion": "ransomware-extortion",
               "takeover": "account-takeover", "hacked-account": "account-takeover"}
    text = aliases.get(text, text)
    if text not in INCIDENT_TYPES:
        raise _fail(where, f"{value!r} is not a known incident type",
                    hint=f"choose one of: {', '.join(INCIDENT_TYPES)}")
    return text


def identifier(raw: Any, where: str) -> Identifier:
    item = _mapping(raw, where, ("kind", "value", "note"), ("kind", "value"))
    kind = _kind(item.get("kind"), f"{where}.kind", IDENTIFIER_KINDS)
    value = _text(item.get("value"), f"{where}.value", required=True, limit=2000)
    return Identifier(kind, _identifier_value(kind, value, f"{where}.value"),
                      _text(item.get("note"), f"{where}.note"))


def loss(raw: Any, where: str, typed: bool = True) -> Loss:
    """A loss as a person gave it (*typed*: amounts and dates in any unambiguous form), or as a
    bundle stores it (``typed=False``: exactly the stored forms)."""
    item = _mapping(raw, where, ("amount", "currency", "date", "institution", "reference",
                                 "description"), ("amount", "currency"))
    return Loss(_amount(item.get("amount"), f"{where}.amount", typed),
                _currency(item.get("currency"), f"{where}.currency"),
                _date(item.get("date"), f"{where}.date", typed),
                _text(item.get("institution"), f"{where}.institution", limit=2000),
                _text(item.get("reference"), f"{where}.reference", limit=2000),
                _text(item.get("description"), f"{where}.description"))


# ---------------------------------------------------------------------------------- reading in
def from_input(data: Any, default_zone: dt.tzinfo | None = None) -> Incident:
    """Validate what a person wrote (YAML, flags or the guided session) into an Incident."""
    if data is None:
        data = {}
    doc = _mapping(data, "", INPUT_KEYS)
    zone_name = _text(doc.get("time_zone"), "time_zone", limit=100)
    zone = zone_named(zone_name) if zone_name else default_zone

    def moment(key: str) -> Moment | None:
        value = doc.get(key)
        return None if value in (None, "") else parse_moment(value, key, zone)

    timeline = []
    for n, raw in enumerate(_list(doc.get("timeline"), "timeline")):
        where = f"timeline[{n}]"
        item = _mapping(raw, where, ("time", "description"), ("time", "description"))
        timeline.append(TimelineEntry(parse_moment(item["time"], f"{where}.time", zone),
                                      _text(item["description"], f"{where}.description",
                                            required=True)))
    return Incident(
        incident_type=incident_type(doc.get("incident_type")),
        description=_text(doc.get("description"), "description"),
        time_zone=zone_name,
        started=moment("started"),
        noticed=moment("noticed"),
        timeline=tuple(timeline),
        identifiers=tuple(identifier(raw, f"identifiers[{n}]")
                          for n, raw in enumerate(_list(doc.get("identifiers"), "identifiers"))),
        losses=tuple(loss(raw, f"losses[{n}]")
                     for n, raw in enumerate(_list(doc.get("losses"), "losses"))),
        affected_accounts=_strings(doc.get("affected_accounts"), "affected_accounts"),
        affected_devices=_strings(doc.get("affected_devices"), "affected_devices"),
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [_text(v, f"{where}[{n}]", limit=2000) for n, v in enumerate(_list(value, where))]
    return tuple(i for i in items if i)


def load_yaml(text: str, source: str = "incident file") -> Incident:
    """Parse an incident YAML file. Numbers, dates and times are kept exactly as written."""
    import yaml  # here: only an incident file given to capture is YAML (start-up of the rest)

    try:
        data = yaml.load(text, Loader=_keep_scalars())  # a SafeLoader subclass: safe_load
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise IncidentError(f"{source} is not valid YAML{where}: "
                            f"{getattr(exc, 'problem', None) or exc}",
                            hint="check the indentation and quoting near that line") from None
    if not isinstance(data, Mapping):  # said of the file, not of a field named ''
        raise IncidentError(f"{source} must be a mapping of fields (key: value lines); it "
                            f"holds {_yaml_kind(data)}",
                            hint="write one field a line, e.g. 'description: …' (see "
                            "'For support workers and scripts' in docs/victims.md)")
    try:
        return from_input(data)
    except IncidentError as exc:
        raise IncidentError(f"{source}, field '{exc.field}': {exc.problem}", hint=exc.hint,
                            field=exc.field, problem=exc.problem) from None


def _yaml_kind(data: Any) -> str:
    """What a YAML document that is not a mapping holds, in words."""
    if data is None:
        return "nothing"
    return "a list" if isinstance(data, list) else "a single value"


@lru_cache(maxsize=1)
def _keep_scalars() -> type[yaml.SafeLoader]:
    """``yaml.safe_load``'s loader, except that numbers, booleans, dates and times stay the text
    that was written: an amount of 0.10 must not become a binary float, an account number 0012
    the octal integer 10, a time 14:05 the base-60 integer 845, nor a user name "no" the boolean
    False. Made on first use, with yaml imported then."""
    import yaml

    class KeepScalars(yaml.SafeLoader):
        pass

    def as_written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        return str(loader.construct_scalar(node))  # type: ignore[arg-type]

    for tag in ("int", "float", "bool", "timestamp"):
        KeepScalars.add_constructor(f"tag:yaml.org,2002:{tag}", as_written)
    return KeepScalars


# ---------------------------------------------------------------------------- the stored record
def from_json(data: bytes, what: str = "incident.json") -> Incident:
    """Parse and strictly validate ``incident.json``: canonical, exact fields, values as written.

    Raises BundleError (the bundle is damaged) rather than IncidentError.
    """
    document = canonical.loads(data, what)
    if document.get("type") != INCIDENT_DOC_TYPE or document.get("format_version") != \
            INCIDENT_VERSION:
        raise BundleError(f"{what} is not an evidencekit incident record of a known version")
    if set(document) != _DOC_KEYS:
        raise BundleError(f"{what}: unexpected fields {sorted(set(document) - _DOC_KEYS)} / "
                          f"missing fields {sorted(_DOC_KEYS - set(document))}")
    try:
        incident = _from_document(document)
    except IncidentError as exc:
        raise BundleError(f"{what}: {exc.message}") from None
    if incident.to_json() != data:
        raise BundleError(f"{what}: a value is not in the form evidencekit writes")
    return incident


def check_record(data: bytes) -> Incident:
    """Like :func:`from_json`, for a record about to be written: errors are input errors."""
    try:
        return from_json(data)
    except BundleError as exc:
        raise IncidentError(f"the incident record cannot be stored: {exc.message}") from None


def _from_document(doc: dict[str, Any]) -> Incident:
    def moment(raw: Any, where: str) -> Moment | None:
        if raw is None:
            return None
        item = _mapping(raw, where, ("time", "time_utc"), ("time",))
        return _stored_moment(item, where)

    timeline = []
    for n, raw in enumerate(_list(doc["timeline"], "timeline")):
        item = _mapping(raw, f"timeline[{n}]", ("time", "time_utc", "description"),
                        ("time", "description"))
        timeline.append(TimelineEntry(_stored_moment(item, f"timeline[{n}]"),
                                      _text(item["description"], f"timeline[{n}].description")))
    zone = doc["time_zone"]
    if zone:
        zone_named(_text(zone, "time_zone"))
    losses = []
    for n, raw in enumerate(_list(doc["losses"], "losses")):
        item = _mapping(raw, f"losses[{n}]", ("amount", "currency", "date", "institution",
                                              "reference", "description"))
        if not isinstance(item.get("amount"), str):
            raise _fail(f"losses[{n}].amount", "must be a decimal number written as a string")
        losses.append(loss(item, f"losses[{n}]", typed=False))
    return Incident(
        incident_type=incident_type(doc["incident_type"]), description=_text(
            doc["description"], "description"), time_zone=zone if isinstance(zone, str) else "",
        started=moment(doc["started"], "started"), noticed=moment(doc["noticed"], "noticed"),
        timeline=tuple(timeline),
        identifiers=tuple(identifier(raw, f"identifiers[{n}]")
                          for n, raw in enumerate(_list(doc["identifiers"], "identifiers"))),
        losses=tuple(losses),
        affected_accounts=_strings(doc["affected_accounts"], "affected_accounts"),
        affected_devices=_strings(doc["affected_devices"], "affected_devices"),
    )


def _stored_moment(item: Mapping[str, Any], where: str) -> Moment:
    if "time_utc" not in item:
        raise _fail(f"{where}.time_utc", "is missing")
    local, utc = item.get("time"), item.get("time_utc")
    if isinstance(local, str) and _DATE.match(local):
        # A date alone: time_utc is null in incident.json, "" in a note (string values only);
        # from_json's canonical round trip then insists on null.
        if utc not in (None, ""):
            raise _fail(f"{where}.time_utc", "must be empty for a date without a time")
        return _day(local, f"{where}.time")
    if not isinstance(local, str) or not _ISO_WITH_OFFSET.match(local):
        raise _fail(f"{where}.time", "is not an ISO 8601 time with a UTC offset")
    parsed = parse_moment(local, f"{where}.time")
    if parsed.utc != utc:
        raise _fail(f"{where}.time_utc", "does not match the time given", )
    return parsed


# ----------------------------------------------------------------------- notes (custody events)
@dataclass(frozen=True)
class Note:
    """An addition to the incident record made later as a signed custody "note" event."""

    kind: str  # note, timeline, identifier, loss
    text: str
    sequence: int
    time: str  # when the note was signed (UTC)
    actor: str
    fingerprint: str
    moment: Moment | None = None  # timeline: when it happened
    identifier: Identifier | None = None
    loss: Loss | None = None
    problem: str | None = None  # details that could not be read (the event itself is signed)


@dataclass(frozen=True)
class NoteContent:
    """What a note says: the ``details`` of a custody "note" event (or of an addendum) and its
    text, as :func:`note_details` and :func:`note_text` check them."""

    details: dict[str, str]
    text: str


# A note's fields as people type them (evidencekit note's options); errors name the option.
NOTE_OPTIONS = {"time": "--time", "identifier_kind": "--id-kind", "value": "--value",
                "amount": "--amount", "currency": "--currency", "date": "--date",
                "institution": "--institution", "reference": "--reference"}
_OPTIONS_OF_KIND = {"note": (), "timeline": ("time",), "identifier": ("identifier_kind", "value"),
                    "loss": ("amount", "currency", "date", "institution", "reference")}
# note_details names the fields it checks (loss.amount); people typed the options (--amount).
_OPTION_OF_FIELD = {"time": "--time", "identifier.kind": "--id-kind",
                    "identifier.value": "--value", "loss.amount": "--amount",
                    "loss.currency": "--currency", "loss.date": "--date",
                    "loss.institution": "--institution", "loss.reference": "--reference"}
KIND_OPTIONS_HINT = ("timeline: --time; identifier: --id-kind --value; loss: --amount "
                     "--currency [--date --institution --reference]")


@dataclass(frozen=True)
class NoteRequest:
    """A note as a person asked for it (``evidencekit note``'s options), not yet checked:
    :meth:`content` checks it and says what is wrong in the words of the options."""

    kind: str = "note"
    text: str = ""
    time: str | None = None  # timeline: when it happened, as typed
    time_zone: str | None = None  # of *time*, when it names none
    identifier_kind: str | None = None
    value: str | None = None
    amount: str | None = None
    currency: str | None = None
    date: str | None = None
    institution: str = ""
    reference: str = ""

    def given(self) -> dict[str, str]:
        """The kind's fields given (not empty), by name as in :data:`NOTE_OPTIONS`."""
        values = {name: getattr(self, name) for name in NOTE_OPTIONS}
        return {name: value for name, value in values.items() if value}

    def check_options(self) -> None:
        """Refuse (UsageError) options that belong to another kind, and a note or timeline entry
        without text: cheap checks, made before anything is read."""
        stray = [NOTE_OPTIONS[name] for name in self.given()
                 if name not in _OPTIONS_OF_KIND.get(self.kind, ())]
        if stray:
            raise UsageError(f"{', '.join(stray)} cannot be used with --kind {self.kind}",
                             hint=KIND_OPTIONS_HINT)
        if self.kind in ("note", "timeline") and not self.text.strip():
            what = "a note" if self.kind == "note" else f"a {self.kind} note"
            raise UsageError(f"{what} needs --text", hint='e.g. --text "The bank called back '
                             'and blocked the card"')

    def content(self, local_zone: dt.tzinfo) -> NoteContent:
        """The checked details and text (IncidentError naming the option typed, e.g. --amount);
        a time without its own zone is in *time_zone*, else in *local_zone*."""
        self.check_options()
        zone = zone_named(self.time_zone, "--time-zone") if self.time_zone else local_zone
        try:
            details = note_details(self.kind, time=self.time, zone=zone,
                                   identifier_kind=self.identifier_kind, value=self.value,
                                   amount=self.amount, currency=self.currency, date=self.date,
                                   institution=self.institution, reference=self.reference)
        except IncidentError as exc:
            raise _as_option(exc) from None
        return NoteContent(details, note_text(self.text))


def _as_option(exc: IncidentError) -> IncidentError:
    """*exc*, naming the option the person typed (--amount) instead of the field (loss.amount)."""
    option = _OPTION_OF_FIELD.get(exc.field)
    if option is None:
        return exc
    joined = f"{option} {exc.problem}" if exc.problem.startswith("is ") else \
        f"{option}: {exc.problem}"  # "--amount is missing", "--amount: '1.2.3' is not …"
    return IncidentError(joined, hint=exc.hint, field=option, problem=exc.problem)


def note_details(kind: str, *, time: str | None = None, zone: dt.tzinfo | None = None,
                 identifier_kind: str | None = None, value: str | None = None,
                 amount: str | None = None, currency: str | None = None,
                 date: str | None = None, institution: str = "", reference: str = ""
                 ) -> dict[str, str]:
    """The ``details`` of a custody "note" event (string values only, docs/FORMAT.md §6), and
    of an addendum (§4.6), which holds the same content inside the encryption."""
    kind = _kind(kind, "kind", NOTE_KINDS)
    if kind == "timeline":
        if not time:
            raise _fail("time", "is needed for a timeline note", hint="add --time 'YYYY-MM-DD "
                        "HH:MM' (with +01:00 or a zone name if it is not your local time)")
        return _fields_of(kind, moment=parse_moment(time, "time", zone))
    if kind == "identifier":
        return _fields_of(kind, found=identifier(
            {"kind": identifier_kind or "", "value": value or ""}, "identifier"))
    if kind == "loss":
        return _fields_of(kind, found_loss=loss(
            {"amount": amount, "currency": currency, "date": date, "institution": institution,
             "reference": reference}, "loss"))
    return {"kind": kind}


# The fields of a note's details for each kind, besides "kind" itself.
NOTE_FIELDS: dict[str, tuple[str, ...]] = {
    "note": (), "timeline": ("time", "time_utc"), "identifier": ("identifier_kind", "value"),
    "loss": ("amount", "currency", "date", "institution", "reference")}


def _fields_of(kind: str, moment: Moment | None = None, found: Identifier | None = None,
               found_loss: Loss | None = None) -> dict[str, str]:
    """The details that :func:`note_details` writes for what a note says."""
    details = {"kind": kind}
    if moment is not None:
        details.update({"time": moment.local, "time_utc": moment.utc or ""})
    if found is not None:
        details.update({"identifier_kind": found.kind, "value": found.value})
    if found_loss is not None:
        details.update({"amount": found_loss.amount, "currency": found_loss.currency,
                        "date": found_loss.date or "", "institution": found_loss.institution,
                        "reference": found_loss.reference})
    return details


def note_text(text: str) -> str:
    """The free text of a note (the custody event's ``note``), checked like any incident text
    and as every public text is (no C1 controls either: evidencekit.publictext)."""
    from evidencekit.publictext import check_text

    return check_text(_text(text, "--text"), "--text")


def note_from_details(details: Mapping[str, str], text: str, *, sequence: int, time: str,
                      actor: str, fingerprint: str) -> Note:
    """What a note says, read from its *details* and *text* (a custody "note" event's, or an
    addendum's); details that cannot be read make a plain note with a ``problem``."""

    def make(kind: str, moment: Moment | None = None, found: Identifier | None = None,
             found_loss: Loss | None = None, problem: str | None = None) -> Note:
        return Note(kind, text, sequence, time, actor, fingerprint, moment, found, found_loss,
                    problem)

    kind = details.get("kind", "note")
    try:
        if kind == "timeline":
            return make("timeline", moment=_stored_moment(details, "details"))
        if kind == "identifier":
            return make("identifier", found=identifier(
                {"kind": details.get("identifier_kind", ""), "value": details.get("value", ""),
                 "note": text}, "details"))
        if kind == "loss":
            fields = {k: details.get(k) for k in NOTE_FIELDS["loss"]}
            return make("loss", found_loss=loss({**fields, "description": text}, "details",
                                                typed=False))
        return make("note")
    except IncidentError as exc:
        return make("note", problem=exc.message)


def check_note(details: Mapping[str, str], text: str) -> Note:
    """Strictly what :func:`note_details` and :func:`note_text` write: a known kind, exactly its
    fields, every value valid and in the form evidencekit writes it (an addendum, §4.6).

    Raises IncidentError naming what is wrong.
    """
    kind = details.get("kind")
    if kind not in NOTE_FIELDS:
        raise IncidentError(f"the note's kind {kind!r} is not one of: {', '.join(NOTE_KINDS)}")
    expected = {"kind", *NOTE_FIELDS[kind]}
    if set(details) != expected or not all(isinstance(v, str) for v in details.values()):
        raise IncidentError(f"a {kind} note has exactly the text fields {sorted(expected)}, "
                            f"not {sorted(details)}")
    note = note_from_details(details, text, sequence=1, time="", actor="", fingerprint="")
    if note.problem is not None:
        raise IncidentError(note.problem)
    if note_text(text) != text:
        raise IncidentError("the note's text is not in the form evidencekit writes (trimmed, "
                            "without control characters)")
    if _fields_of(kind, note.moment, note.identifier, note.loss) != dict(details):
        raise IncidentError("a value of the note is not in the form evidencekit writes")
    return note


def notes_from_events(events: Iterable[CustodyEvent]) -> list[Note]:
    """Every "note" custody event as a Note (the events have been verified by the caller)."""
    return [note_from_details(event.details, event.note, sequence=event.sequence,
                              time=event.time, actor=event.actor_name,
                              fingerprint=event.actor.fingerprint)
            for event in events if event.action == "note"]


def totals(losses: Iterable[Loss]) -> dict[str, str]:
    """Sum of the amounts per currency, exactly (Decimal), as text, currencies sorted."""
    sums: dict[str, Decimal] = {}
    with localcontext() as exact:
        # The default 28 significant digits round a sum of a few hundred 18-digit amounts
        # with 8 decimals; 200 digits hold any number of them, and rounding would raise.
        exact.prec = 200
        exact.traps[Inexact] = True
        for item in losses:
            sums[item.currency] = sums.get(item.currency, Decimal(0)) + Decimal(item.amount)
    return {currency: str(sums[currency]) for currency in sorted(sums)}
