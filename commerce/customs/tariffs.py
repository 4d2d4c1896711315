"""The duty/VAT table: rows per (destination country, HS subheading) with source and date.

The shipped table is ``data/tariffs.csv`` (lines starting with ``#`` are its notes); an operator
imports more rows in the same format with `import_rows` (``python -m commerce.customs
import-tariffs FILE``). A row imported again replaces the earlier one, keeping one rate per
(destination, hs6) at a time.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from commerce.customs.errors import CustomsInvalidError

SHIPPED = Path(__file__).with_name("data") / "tariffs.csv"
_FIELDS = (
    "destination",
    "hs6",
    "national_code",
    "description",
    "duty_pct",
    "vat_pct",
    "valuation",
    "source",
    "source_date",
    "status",
)


@dataclass(frozen=True)
class TariffRate:
    """Duty and VAT of one HS subheading entering one country, and where the figures come from."""

    destination: str
    hs6: str
    national_code: str
    description: str
    duty_pct: Decimal
    vat_pct: Decimal
    valuation: str  # CIF | FOB: the customs value basis
    source: str
    source_date: date
    note: str = ""

    def cited(self) -> str:
        """The source and date, as shown beside a component."""
        status = f"; {self.note}" if self.note else ""
        return f"{self.source} (as of {self.source_date.isoformat()}{status})"


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CustomsInvalidError(f"{what} {text!r} is not a decimal") from None
    if not value.is_finite() or value < 0 or value > 1000:
        raise CustomsInvalidError(f"{what} {text!r} is not a percentage")
    return value


def parse_rows(text: str) -> list[TariffRate]:
    """The rows of a tariff CSV (``#`` lines are notes); refuses a malformed row, naming it."""
    lines = [line for line in io.StringIO(text) if not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) != _FIELDS:
        raise CustomsInvalidError(f"a tariff table has the columns {','.join(_FIELDS)}")
    rates = []
    for n, row in enumerate(reader, 2):
        dest, hs6, national = row["destination"], row["hs6"], row["national_code"]
        if len(dest) != 2 or not dest.isupper() or not dest.isalpha():
            raise CustomsInvalidError(f"row {n}: destination {dest!r} is not a country code")
        if len(hs6) != 6 or not hs6.isdigit():
            raise CustomsInvalidError(f"row {n}: hs6 {hs6!r} is not a 6-digit HS subheading")
        if not national.isdigit() or not national.startswith(hs6) or len(national) > 10:
            raise CustomsInvalidError(f"row {n}: national_code {national!r} does not extend hs6")
        if row["valuation"] not in ("CIF", "FOB"):
            raise CustomsInvalidError(f"row {n}: valuation must be CIF or FOB")
        if not row["source"]:
            raise CustomsInvalidError(f"row {n}: every rate names its source")
        try:
            when = date.fromisoformat(row["source_date"])
        except ValueError:
            raise CustomsInvalidError(f"row {n}: source_date is not YYYY-MM-DD") from None
        rates.append(
            TariffRate(
                destination=dest,
                hs6=hs6,
                national_code=national,
                description=row["description"],
                duty_pct=_decimal(row["duty_pct"], f"row {n}: duty_pct"),
                vat_pct=_decimal(row["vat_pct"], f"row {n}: vat_pct"),
                valuation=row["valuation"],
                source=row["source"],
                source_date=when,
                note=row["status"],
            )
        )
    return rates


def shipped_rows() -> list[TariffRate]:
    return parse_rows(SHIPPED.read_text(encoding="utf-8"))


def import_rows(conn: Any, rates: list[TariffRate]) -> int:
    """Insert or replace the rows (sync connection; the caller commits); returns how many."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tariff_rates (destination, hs6, national_code, description, duty_pct,"
            " vat_pct, valuation, source, source_date, note)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (destination, hs6) DO UPDATE SET national_code = EXCLUDED.national_code,"
            " description = EXCLUDED.description, duty_pct = EXCLUDED.duty_pct,"
            " vat_pct = EXCLUDED.vat_pct, valuation = EXCLUDED.valuation,"
            " source = EXCLUDED.source, source_date = EXCLUDED.source_date,"
            " note = EXCLUDED.note, imported_at = now()",
            [
                (
                    r.destination,
                    r.hs6,
                    r.national_code,
                    r.description,
                    r.duty_pct,
                    r.vat_pct,
                    r.valuation,
                    r.source,
                    r.source_date,
                    r.note,
                )
                for r in rates
            ],
        )
    return len(rates)


_SELECT = (
    "SELECT destination, hs6, national_code, description, duty_pct, vat_pct, valuation, source,"
    " source_date, note FROM tariff_rates WHERE destination = %s"
)
RATES_SQL = _SELECT + " AND hs6 = ANY(%s) ORDER BY hs6"
ALL_RATES_SQL = _SELECT + " ORDER BY hs6"


def rate_of_row(row: Any) -> TariffRate:
    dest, hs6, national, description, duty, vat, valuation, source, when, note = row
    return TariffRate(
        dest, hs6, national, description, Decimal(duty), Decimal(vat), valuation, source, when, note
    )
