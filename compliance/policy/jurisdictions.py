"""Jurisdictions: the law a request falls under, as the policy declares it.

``[jurisdictions.NAME]`` says when a request is due (``deadline_days`` or ``deadline_months``
after receipt), how far its deadline may be extended (``extension_days`` or
``extension_months``), optionally that a deadline falling on a weekend or public holiday of
one country moves to the next working day (``working_days = "GB"``, a country code of the
``holidays`` package, or ``"GB-ENG"`` with a subdivision), and which values of ``[subjects]
jurisdiction_column`` it covers (``countries``). Notices to the subject cite the law by
``citation`` and say how to complain by ``complaint``: a CCPA request must not quote GDPR
articles at a Californian. The built-in ``gdpr`` (one calendar month, extendable by two:
GDPR Art. 12(3)) applies unless the policy declares its own. The arithmetic lives in
``compliance.dsar.deadlines``; this module only describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import holidays

from compliance.errors import ConfigError
from compliance.free_text import has_control, not_utf8
from compliance.policy.fields import Field, key_name, read_section

DEFAULT_JURISDICTION = "gdpr"
#: What a notice cites for a declared jurisdiction that names no ``citation``.
DEFAULT_CITATION = "the law that applies to your request"
#: What a refusal or a lifted restriction tells the subject, for one that names no ``complaint``.
DEFAULT_COMPLAINT = (
    "You may also have the right to complain to the authority that oversees data protection "
    "where you live."
)
GDPR_CITATION = "GDPR Art. 12(3)"
GDPR_COMPLAINT = (
    "You have the right to lodge a complaint with a data protection supervisory authority, "
    "in particular in the EU member state where you live, work or where you believe the "
    "infringement took place (GDPR Art. 77), and to seek a judicial remedy (GDPR Art. 79)."
)
#: Longest citation or complaint text: one paragraph of a notice, not a document.
MAX_NOTICE_TEXT = 1000
#: Bounds that keep date arithmetic far inside the calendar: ten years either way.
MAX_PERIOD_DAYS = 3650
MAX_PERIOD_MONTHS = 120


@dataclass(frozen=True)
class Jurisdiction:
    """A law's deadline for answering a request, and how far it may be extended."""

    name: str
    deadline_months: int = 0
    deadline_days: int = 0
    extension_months: int = 0
    extension_days: int = 0
    #: Country (``GB``) or country and subdivision (``GB-ENG``) whose working days count.
    working_days: str | None = None
    #: Values of ``[subjects] jurisdiction_column`` it covers, upper-cased.
    countries: tuple[str, ...] = ()
    #: The rule a notice cites for the deadline and its extension ("CCPA § 1798.130").
    citation: str = DEFAULT_CITATION
    #: The paragraph telling the subject how to complain (refusal, restriction lifted).
    complaint: str = DEFAULT_COMPLAINT

    @property
    def deadline_text(self) -> str:
        return period_text(self.deadline_months, self.deadline_days)

    @property
    def extension_text(self) -> str:
        return period_text(self.extension_months, self.extension_days) or "no extension"


#: One calendar month from receipt, extendable by at most two more (GDPR Art. 12(3)).
GDPR = Jurisdiction(
    DEFAULT_JURISDICTION,
    deadline_months=1,
    extension_months=2,
    citation=GDPR_CITATION,
    complaint=GDPR_COMPLAINT,
)


def period_text(months: int, days: int) -> str:
    """``1 month``, ``45 days``, ``1 month and 10 days``; "" for no time at all."""
    pairs = ((months, "month"), (days, "day"))
    return " and ".join(f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in pairs if n)


@lru_cache(maxsize=32)
def holiday_calendar(code: str) -> holidays.HolidayBase:
    """The public holidays (and weekend) of ``CC`` or ``CC-SUBDIVISION``; ValueError if unknown."""
    country, _, subdivision = code.partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError:
        raise ValueError(code) from None


def _count(limit: int, unit: str) -> Any:
    def check(value: int, key: str, _context: Any) -> int:
        if value < 0:
            raise ConfigError(f"{key}: must be 0 or more, got {value}")
        if value > limit:
            raise ConfigError(f"{key}: at most {limit} {unit}, got {value}")
        return value

    return check


def _working_days(value: str, key: str, _context: Any) -> str:
    code = value.strip().upper()
    try:
        holiday_calendar(code)
    except ValueError:
        raise ConfigError(
            f"{key}: '{value}' is not a country the holidays package knows (a code such as "
            "GB, DE or US, optionally with a subdivision: GB-ENG, US-CA)"
        ) from None
    return code


def _countries(value: list[str], key: str, _context: Any) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(c.strip().upper() for c in value))
    if "" in codes:
        raise ConfigError(f"{key}: a country is empty")
    return codes


def _notice_text(value: str, key: str, _context: Any) -> str:
    text = " ".join(value.split())
    if has_control(text) or not_utf8(text):
        raise ConfigError(f"{key}: holds a control character or text that is not UTF-8")
    if not text:
        raise ConfigError(f"{key}: is empty")
    if len(text) > MAX_NOTICE_TEXT:
        raise ConfigError(f"{key}: at most {MAX_NOTICE_TEXT} characters, got {len(text)}")
    if "$" in text:
        raise ConfigError(f"{key}: may not contain '$' (notice templates read it as a value)")
    return text


_FIELDS = (
    Field("deadline_days", int, check=_count(MAX_PERIOD_DAYS, "days")),
    Field("deadline_months", int, check=_count(MAX_PERIOD_MONTHS, "months")),
    Field("extension_days", int, check=_count(MAX_PERIOD_DAYS, "days")),
    Field("extension_months", int, check=_count(MAX_PERIOD_MONTHS, "months")),
    Field("working_days", check=_working_days),
    Field("countries", list, default=(), items=str, check=_countries),
    Field("citation", check=_notice_text),
    Field("complaint", check=_notice_text),
)


def _one_of(values: dict[str, Any], first: str, second: str, key: str) -> None:
    if values[first] is not None and values[second] is not None:
        raise ConfigError(f"{key}.{second}: give {first} or {second}, not both")


def parse_jurisdiction(name: str, raw: Any) -> Jurisdiction:
    key = f"jurisdictions.{key_name(name)}"
    values = read_section(raw, _FIELDS, key)
    _one_of(values, "deadline_days", "deadline_months", key)
    _one_of(values, "extension_days", "extension_months", key)
    given = "deadline_days" if values["deadline_days"] is not None else "deadline_months"
    if values[given] is None:
        raise ConfigError(f"{key}: give deadline_days or deadline_months")
    if values[given] == 0:
        raise ConfigError(f"{key}.{given}: expected at least 1, got 0")
    words = ("working_days", "countries", "citation", "complaint")
    counts = {k: v or 0 for k, v in values.items() if k not in words}
    # A declared gdpr keeps GDPR's wording unless it says otherwise.
    built_in = GDPR if name == DEFAULT_JURISDICTION else Jurisdiction(name)
    return Jurisdiction(
        name=name,
        working_days=values["working_days"],
        countries=values["countries"],
        citation=values["citation"] or built_in.citation,
        complaint=values["complaint"] or built_in.complaint,
        **counts,
    )


def parse_jurisdictions(raw: Mapping[str, Any], default: str) -> dict[str, Jurisdiction]:
    """Every declared jurisdiction, the built-in ``gdpr`` unless declared; ``default`` known.

    A country listed by two jurisdictions would make the choice depend on their order, so
    it is refused.
    """
    declared = {name: parse_jurisdiction(name, entry) for name, entry in raw.items()}
    found: dict[str, str] = {}
    for name, jurisdiction in declared.items():
        for code in jurisdiction.countries:
            if code in found:
                raise ConfigError(
                    f"jurisdictions.{key_name(name)}.countries: '{code}' is already listed by "
                    f"jurisdictions.{key_name(found[code])}"
                )
            found[code] = name
    known = {DEFAULT_JURISDICTION: GDPR, **declared}
    if default not in known:
        raise ConfigError(
            f"dsar.default_jurisdiction: '{default}' is not a declared jurisdiction "
            f"(known: {', '.join(sorted(known))})"
        )
    return known
