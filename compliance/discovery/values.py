"""What personal data looks like: by a column's name, and by the values a sample holds.

Value recognisers come from well-kept libraries (email-validator, phonenumbers, schwifty,
python-stdnum, ipaddress), never from home-made patterns, except the UK National Insurance
number, which python-stdnum does not cover: it follows HMRC's published prefix rules.
Names, postal addresses and birth dates cannot be told from values alone, so a column's
name finds them and the value's shape only confirms it.

A recogniser is *strong* when its format is distinctive enough (a check digit and a shape
no counter or price has) to judge a column by its values alone; a weak one (nine bare
digits pass the US SSN check nine times in ten) needs a column name saying "number" or
"id" too. Nothing here keeps or returns a value: callers get counts.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import email_validator
import phonenumbers
import schwifty
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.eu import vat
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

from compliance.discovery.names import Category, ColumnKind, name_tokens, personal_by_name

#: The national identifiers recognised by value (README, "Where personal data lives").
NATIONAL_IDS = (
    "US Social Security number (python-stdnum us.ssn)",
    "UK National Insurance number (HMRC's prefix rules)",
    "French NIR / INSEE number (python-stdnum fr.nir)",
    "German tax id, Steuer-IdNr (python-stdnum de.idnr)",
    "Spanish DNI and NIE (python-stdnum es.dni, es.nie)",
    "Dutch BSN (python-stdnum nl.bsn)",
    "Italian codice fiscale (python-stdnum it.codicefiscale)",
    "EU VAT numbers of every member state (python-stdnum eu.vat)",
)


@dataclass(frozen=True)
class ValueRecogniser:
    """One library check of single values; its ``name`` is what a finding records."""

    name: str
    category: Category
    check: Callable[[str], bool]
    #: May judge a column by its values alone (else only beside an id-like column name).
    strong: bool = True


def _email(value: str) -> bool:
    if "@" not in value or len(value) > 254 or any(c.isspace() for c in value):
        return False
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


_PHONE_CHARS = re.compile(r"\+[0-9][0-9 ()./-]{5,24}")


def _phone(value: str) -> bool:
    """International numbers (``+49 30 …``): without a country code any number could be one."""
    if not _PHONE_CHARS.fullmatch(value):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        return False


_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9 ]{11,38}")


def _iban(value: str) -> bool:
    if not _IBAN_SHAPE.fullmatch(value.upper()):
        return False
    try:
        schwifty.IBAN(value)
    except ValueError:  # schwifty's errors are ValueErrors
        return False
    return True


_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")


def _ip(value: str) -> bool:
    if not _IP_CHARS.fullmatch(value) or ("." not in value and value.count(":") < 2):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_SSN_DASHED = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_NINO = re.compile(r"([A-Z]{2}) ?([0-9]{2}) ?([0-9]{2}) ?([0-9]{2}) ?([A-D])")
#: HMRC National Insurance Manual NIM39110: letters never used, and prefixes never issued.
_NINO_NEVER_FIRST = set("DFIQUV")
_NINO_NEVER_SECOND = set("DFIQUVO")
_NINO_NEVER = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def _nino(value: str) -> bool:
    match = _NINO.fullmatch(value.upper())
    if not match:
        return False
    prefix = match.group(1)
    return (
        prefix[0] not in _NINO_NEVER_FIRST
        and prefix[1] not in _NINO_NEVER_SECOND
        and prefix not in _NINO_NEVER
    )


_DIGITS = re.compile(r"[0-9 .-]{8,24}")
_HAS_LETTER = re.compile(r"[A-Za-z]")


def _stdnum(module: Any, shape: re.Pattern[str] | None = None) -> Callable[[str], bool]:
    """python-stdnum's ``is_valid``, behind a cheap shape check."""

    def check(value: str) -> bool:
        if len(value) > 40 or (shape is not None and not shape.fullmatch(value)):
            return False
        return bool(module.is_valid(value))

    return check


_VAT_SHAPE = re.compile(r"[A-Za-z]{2}[ .-]?[0-9A-Za-z][0-9A-Za-z .+*-]{1,16}")
_FISCAL_SHAPE = re.compile(r"[A-Za-z0-9]{16}|[A-Za-z0-9]{11}")
_DNI_SHAPE = re.compile(r"[0-9]{8}[ -]?[A-Za-z]")
_NIE_SHAPE = re.compile(r"[XYZxyz][ -]?[0-9]{7}[ -]?[A-Za-z]")

VALUE_RECOGNISERS: tuple[ValueRecogniser, ...] = (
    ValueRecogniser("email-validator", Category.EMAIL, _email),
    ValueRecogniser("phonenumbers", Category.PHONE, _phone),
    ValueRecogniser("schwifty", Category.IBAN, _iban),
    ValueRecogniser("ipaddress", Category.IP_ADDRESS, _ip),
    ValueRecogniser("python-stdnum us.ssn", Category.NATIONAL_ID, _stdnum(ssn, _SSN_DASHED)),
    ValueRecogniser("HMRC NINO rules", Category.NATIONAL_ID, _nino),
    ValueRecogniser("python-stdnum fr.nir", Category.NATIONAL_ID, _stdnum(nir, _DIGITS)),
    ValueRecogniser("python-stdnum es.dni", Category.NATIONAL_ID, _stdnum(dni, _DNI_SHAPE)),
    ValueRecogniser("python-stdnum es.nie", Category.NATIONAL_ID, _stdnum(nie, _NIE_SHAPE)),
    ValueRecogniser(
        "python-stdnum it.codicefiscale",
        Category.NATIONAL_ID,
        _stdnum(codicefiscale, _FISCAL_SHAPE),
    ),
    ValueRecogniser("python-stdnum eu.vat", Category.NATIONAL_ID, _stdnum(vat, _VAT_SHAPE)),
    # Bare digits: a tenth of any nine-digit counter passes the BSN check, nine in ten the
    # SSN one; these speak only beside a column name like "citizen_number".
    # SSN last: its check is the loosest, so a column of BSNs is named as BSNs.
    ValueRecogniser("python-stdnum nl.bsn", Category.NATIONAL_ID, _stdnum(bsn, _DIGITS), False),
    ValueRecogniser("python-stdnum de.idnr", Category.NATIONAL_ID, _stdnum(idnr, _DIGITS), False),
    ValueRecogniser("python-stdnum us.ssn", Category.NATIONAL_ID, _stdnum(ssn, _DIGITS), False),
)

#: Column-name words that make a weak (bare digits) recogniser worth asking.
_ID_LIKE = {"id", "number", "no", "nr", "num", "code", "ref", "identifier", "nummer", "numero"}

# Shapes: they confirm a name, an address or a birth date the column's name found.
_WORD = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*\.?"
_PERSON_NAME = re.compile(rf"{_WORD}(?:\s+{_WORD}){{0,5}}")
_EARLIEST_BIRTH = 1900


def _name_shape(value: str) -> bool:
    return 2 <= len(value) <= 100 and bool(_PERSON_NAME.fullmatch(value.strip()))


def _address_shape(value: str) -> bool:
    return 2 <= len(value) <= 300 and bool(_HAS_LETTER.search(value)) and "@" not in value


def _birth_shape(value: Any) -> bool:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()[:10])
        except ValueError:
            return False
    if not isinstance(value, date):
        return False
    return value.year >= _EARLIEST_BIRTH and value < date.today()


SHAPE = "value shape"
_SHAPES: dict[Category, Callable[[Any], bool]] = {
    Category.NAME: lambda v: isinstance(v, str) and _name_shape(v),
    Category.POSTAL_ADDRESS: lambda v: isinstance(v, str) and _address_shape(v),
    Category.BIRTH_DATE: _birth_shape,
}

#: By name, the finding's first recogniser.
BY_NAME = "column name"
#: A column is judged by its values when this share of its non-empty sampled values match...
VALUE_SHARE = 0.8
#: ...and at least this many distinct ones do (fewer when the sample holds fewer rows): a
#: column holding one "noreply@shop.example" in every row is nobody's address.
MIN_DISTINCT = 3


@dataclass(frozen=True)
class Verdict:
    """How one column was judged: its category, the recognisers that said so, and counts."""

    category: Category
    recognisers: tuple[str, ...]
    #: Non-empty values sampled, and how many of them the named recognisers matched.
    sampled: int
    matched: int


@dataclass
class _Tally:
    recogniser: ValueRecogniser
    matched: int = 0
    distinct: int = 0


def _text_values(values: Iterable[Any]) -> list[str]:
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _by_values(texts: list[str], id_like: bool) -> _Tally | None:
    """The recogniser most values match, when enough of them do. A recogniser that has
    missed too often to reach the share is not asked again."""
    counts = Counter(texts)
    total = len(texts)
    allowed_misses = total * (1 - VALUE_SHARE)
    tallies = [_Tally(r) for r in VALUE_RECOGNISERS if r.strong or id_like]
    seen = 0
    for text, n in counts.items():
        seen += n
        for tally in tallies:
            if tally.recogniser.check(text):
                tally.matched += n
                tally.distinct += 1
        tallies = [t for t in tallies if seen - t.matched <= allowed_misses]
        if not tallies:
            return None
    need = min(MIN_DISTINCT, total)
    fitting = [t for t in tallies if t.distinct >= need]
    return max(fitting, key=lambda t: t.matched, default=None)


def judge_column(
    table: str, column: str, kind: ColumnKind, values: Sequence[Any] | None
) -> Verdict | None:
    """Whether ``table.column`` holds personal data, by its name and its sampled values.

    ``values`` is the column's sample (None when the table could not be read). A name finds
    the column whatever its values (an erased column keeps its name); values find it alone
    only through a strong recogniser, or a weak one beside an id-like name.
    """
    by_name = personal_by_name(table, column, kind)
    values = values or []
    if kind is ColumnKind.TEMPORAL:
        if by_name is not Category.BIRTH_DATE:
            return None
        present = [v for v in values if v is not None]
        shaped = sum(1 for v in present if _birth_shape(v))
        return _verdict(by_name, shaped, len(present))
    if kind is not ColumnKind.TEXT:
        return Verdict(by_name, (BY_NAME,), 0, 0) if by_name else None
    texts = _text_values(values)
    id_like = bool(set(name_tokens(column)) & _ID_LIKE)
    found = _by_values(texts, id_like) if texts else None
    if found is not None:
        # The values win over the name: an "address" column of emails holds emails, and only
        # a name that says so too counts as a recogniser.
        category = found.recogniser.category
        names = (BY_NAME,) if by_name is category else ()
        return Verdict(category, (*names, found.recogniser.name), len(texts), found.matched)
    if by_name is None:
        return None
    shape = _SHAPES.get(by_name)
    if shape is not None:
        return _verdict(by_name, sum(1 for t in texts if shape(t)), len(texts))
    # Named so, but too few values match to say it by value: the best match is evidence.
    tried = [(r.name, sum(1 for t in texts if r.check(t))) for r in VALUE_RECOGNISERS
             if r.category is by_name]  # fmt: skip
    name, matched = max(tried, key=lambda x: x[1], default=("", 0))
    return Verdict(by_name, (BY_NAME, name) if matched else (BY_NAME,), len(texts), matched)


def _verdict(category: Category, shaped: int, sampled: int) -> Verdict:
    names = (BY_NAME, SHAPE) if shaped else (BY_NAME,)
    return Verdict(category, names, sampled, shaped)
