"""Personal data by the name of its column: the categories, and the words that name them.

Cheap on purpose (no library of value checks is imported), so every job can warn at start-up
about personal columns of the subjects table that erasure leaves as they are.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from enum import StrEnum


class Category(StrEnum):
    """A kind of personal data the scan recognises (Art. 30(1)(c) "categories")."""

    EMAIL = "email"
    PHONE = "phone"
    IBAN = "iban"
    NATIONAL_ID = "national_id"
    IP_ADDRESS = "ip_address"
    NAME = "name"
    POSTAL_ADDRESS = "postal_address"
    BIRTH_DATE = "birth_date"


CATEGORY_LABELS = {
    Category.EMAIL: "email address",
    Category.PHONE: "phone number",
    Category.IBAN: "bank account (IBAN)",
    Category.NATIONAL_ID: "national identifier or tax number",
    Category.IP_ADDRESS: "IP address",
    Category.NAME: "person's name",
    Category.POSTAL_ADDRESS: "postal address",
    Category.BIRTH_DATE: "date of birth",
}


class ColumnKind(StrEnum):
    """What a column's type lets the scan do with it."""

    TEXT = "text"  # sampled and judged by value
    NUMBER = "number"  # judged by name only: counters and prices are no identifiers
    TEMPORAL = "temporal"  # a date: only a birth date by name, its values' shape confirms
    JSON = "json"  # judged by name only (a line in the report says so)
    BINARY = "binary"  # never read (a line in the report says so)
    OTHER = "other"  # booleans and the like: judged by name only


# ---------------------------------------------------------------- names

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def name_tokens(name: str) -> tuple[str, ...]:
    """``billingAddress_line1`` -> ``("billing", "address", "line1")``."""
    return tuple(t.lower() for t in _SPLIT.split(_CAMEL.sub("_", name)) if t)


_EMAIL_WORDS = {"email", "mail", "emailaddress", "mailaddress"}
_PHONE_WORDS = {"phone", "telephone", "tel", "mobile", "cellphone", "fax", "msisdn",
                "phonenumber", "mobilenumber", "telefon", "telefono", "telefoon"}  # fmt: skip
_NUMBER_WORDS = {"number", "no", "nr", "num"}
_NATIONAL_ID_WORDS = {
    "ssn", "nino", "nir", "insee", "idnr", "steuerid", "steueridentifikationsnummer",
    "taxid", "tin", "dni", "nie", "nif", "bsn", "burgerservicenummer", "codicefiscale",
    "vat", "vatid", "vatin", "vatnumber", "ustid", "passport", "personnummer", "nationalid",
    "socialsecurity", "nationalinsurance", "idcard",
}  # fmt: skip
_NATIONAL_ID_PAIRS = {("social", "security"), ("national", "insurance"), ("national", "id"),
                      ("tax", "id"), ("tax", "number"), ("codice", "fiscale"), ("id", "card"),
                      ("identity", "card"), ("steuer", "id"), ("personal", "id")}  # fmt: skip
_IP_WORDS = {"ip", "ipv4", "ipv6", "ipaddress", "ipaddr", "remoteaddr", "remoteip", "clientip"}
_BIRTH_WORDS = {"birth", "birthday", "birthdate", "dob", "dateofbirth", "born"}
_ADDRESS_WORDS = {"address", "addr", "street", "city", "town", "postcode", "zip", "zipcode",
                  "postalcode", "housenumber", "address1", "address2"}  # fmt: skip
_ADDRESS_PAIRS = {("postal", "code"), ("zip", "code"), ("post", "code"), ("house", "number")}
#: Words that make an address a person's wherever it stands (``orders.delivery_address``).
_PERSON_PLACES = {"billing", "shipping", "delivery", "home", "residential", "private", "mailing",
                  "invoice", "customer", "user", "contact", "member", "patient", "employee",
                  "personal", "postal", "residence", "domicile"}  # fmt: skip
#: Address words that belong to something else when these stand beside them.
_NOT_POSTAL = {"mac", "wallet", "web", "url", "ip", "email", "mail", "contract", "memory",
               "return", "ref", "reply"}  # fmt: skip
_NAME_WORDS = {"fullname", "firstname", "lastname", "surname", "forename", "givenname",
               "familyname", "middlename", "maidenname", "username", "nickname",
               "displayname", "contactname", "customername"}  # fmt: skip
#: ``X_name`` is a person's name for these X (``product_name`` and ``file_name`` are not).
_PERSON_QUALIFIERS = {
    "full", "first", "last", "given", "family", "middle", "maiden", "sur", "fore", "nick",
    "display", "contact", "customer", "billing", "shipping", "holder", "person", "user",
    "employee", "patient", "member", "client", "owner", "recipient", "sender", "legal",
    "real", "guardian", "student", "subscriber", "cardholder", "applicant",
}  # fmt: skip
#: A bare ``name`` column is a person's name in a table of people (``customers.name``), not in
#: ``genres`` or ``products``.
_PEOPLE_TABLES = {
    "user", "customer", "employee", "contact", "person", "people", "member", "patient",
    "client", "subscriber", "student", "staff", "applicant", "guest", "lead", "recipient",
    "passenger", "candidate", "volunteer", "donor", "profile", "participant", "attendee",
    "beneficiary", "borrower", "buyer", "seller", "traveller", "traveler", "visitor",
}  # fmt: skip


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _people_table(table: str) -> bool:
    return any(_singular(t) in _PEOPLE_TABLES for t in name_tokens(table))


def _pairs(tokens: Sequence[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(tokens))


def category_by_name(table: str, column: str) -> Category | None:
    """The category a column's name says, or None. Checked most specific first, so
    ``email_address`` is an email and ``ip_address`` an IP address, not a postal address."""
    tokens = name_tokens(column)
    if not tokens:
        return None
    compact = "".join(tokens)
    words = set(tokens) | {compact}
    pairs = _pairs(tokens)
    last = tokens[-1]
    if last in _EMAIL_WORDS or compact in _EMAIL_WORDS or tokens[-2:] == ("e", "mail"):
        return Category.EMAIL
    if tokens[-2:] in (("email", "address"), ("mail", "address")):
        return Category.EMAIL
    if (
        last in _PHONE_WORDS
        or compact in _PHONE_WORDS
        or (len(tokens) > 1 and tokens[-2] in _PHONE_WORDS and last in _NUMBER_WORDS)
    ):
        return Category.PHONE
    if "iban" in words or ("bank", "account") in pairs:
        return Category.IBAN
    if words & _NATIONAL_ID_WORDS or pairs & _NATIONAL_ID_PAIRS:
        return Category.NATIONAL_ID
    if words & _IP_WORDS or ("ip", "address") in pairs or ("remote", "addr") in pairs:
        return Category.IP_ADDRESS
    if words & _BIRTH_WORDS:
        return Category.BIRTH_DATE
    # A shop's or warehouse's address is nobody's: a person's, by its table or its words.
    postal = (words & _ADDRESS_WORDS or pairs & _ADDRESS_PAIRS) and not words & _NOT_POSTAL
    if postal and (_people_table(table) or words & _PERSON_PLACES):
        return Category.POSTAL_ADDRESS
    if compact in _NAME_WORDS or (last == "name" and len(tokens) > 1 and (
        tokens[-2] in _PERSON_QUALIFIERS
    )):  # fmt: skip
        return Category.NAME
    if tokens == ("name",) and _people_table(table):
        return Category.NAME
    return None


#: The kinds of column a category found by name may be: an ``email_verified`` boolean, a
#: ``phone_count`` integer or a ``birth_year`` integer is not the data itself.
_NAME_KINDS: dict[Category, frozenset[ColumnKind]] = {
    Category.EMAIL: frozenset({ColumnKind.TEXT, ColumnKind.JSON}),
    Category.PHONE: frozenset({ColumnKind.TEXT, ColumnKind.NUMBER, ColumnKind.JSON}),
    Category.IBAN: frozenset({ColumnKind.TEXT, ColumnKind.JSON}),
    Category.NATIONAL_ID: frozenset({ColumnKind.TEXT, ColumnKind.NUMBER, ColumnKind.JSON}),
    Category.IP_ADDRESS: frozenset({ColumnKind.TEXT, ColumnKind.OTHER}),  # INET, CIDR
    Category.NAME: frozenset({ColumnKind.TEXT, ColumnKind.JSON}),
    Category.POSTAL_ADDRESS: frozenset({ColumnKind.TEXT, ColumnKind.JSON}),
    Category.BIRTH_DATE: frozenset({ColumnKind.TEXT, ColumnKind.TEMPORAL}),
}


def personal_by_name(table: str, column: str, kind: ColumnKind) -> Category | None:
    """The column's category from its name, when its type can hold such data."""
    category = category_by_name(table, column)
    if category is None or kind not in _NAME_KINDS[category]:
        return None
    return category
