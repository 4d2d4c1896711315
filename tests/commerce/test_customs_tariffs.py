"""The operator's import of duty/VAT rows: the shipped table by default, another file's rows
inserted or replacing the same (destination, HS) row, a malformed file refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from commerce.customs.__main__ import main
from commerce.customs.tariffs import SHIPPED
from tests.support.api import ApiHarness


def test_import_shipped_then_more(
    h: ApiHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import-tariffs", "--schema", h.schema]) == 0
    shipped = len([x for x in SHIPPED.read_text().splitlines() if x and not x.startswith("#")])
    with h.connect() as conn:
        count = conn.execute("SELECT count(*) FROM tariff_rates").fetchone()[0]
    assert count == shipped - 1  # the header line
    more = tmp_path / "more.csv"
    header = SHIPPED.read_text().splitlines()[
        next(i for i, x in enumerate(SHIPPED.read_text().splitlines()) if x.startswith("dest"))
    ]
    more.write_text(
        header
        + "\nUS,610910,6109100012,Cotton T-shirts,16.5,0,FOB,USITC HTSUS (operator),2027-01-02,"
        "checked\nGB,610910,6109100010,Cotton T-shirts,12,20,CIF,UK Global Tariff,"
        "2027-01-02,checked\n"
    )
    assert main(["import-tariffs", str(more), "--schema", h.schema]) == 0
    with h.connect() as conn:
        rows = conn.execute(
            "SELECT destination, national_code, source, source_date::text FROM tariff_rates"
            " WHERE hs6 = '610910' ORDER BY 1"
        ).fetchall()
    assert ("US", "6109100012", "USITC HTSUS (operator)", "2027-01-02") in rows
    assert ("GB", "6109100010", "UK Global Tariff", "2027-01-02") in rows
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\nUS,610910,6109100012,x,abc,0,FOB,src,2027-01-02,ok\n")
    capsys.readouterr()
    assert main(["import-tariffs", str(bad), "--schema", h.schema]) == 2
    assert "duty_pct" in capsys.readouterr().err
