"""Who pays which cost under the Incoterms 2020 rules TraceHub prices landed cost for.

Costs: ``origin_charges`` (export clearance and loading at origin), ``freight`` (main
carriage), ``insurance`` (cargo insurance of the main carriage), ``import_duty`` and
``import_vat``. EXW leaves everything to the buyer, including export clearance; FOB ends the
seller's costs once the goods are loaded; CIF adds freight and minimum insurance; DAP delivers
to the named place (the seller carries the risk, so insures for itself), import clearance to
the buyer; DDP adds import duty and VAT to the seller.
"""

from __future__ import annotations

from commerce.customs.errors import CustomsInvalidError

COSTS = ("origin_charges", "freight", "insurance", "import_duty", "import_vat")
_SELLER: dict[str, frozenset[str]] = {
    "EXW": frozenset(),
    "FOB": frozenset({"origin_charges"}),
    "CIF": frozenset({"origin_charges", "freight", "insurance"}),
    "DAP": frozenset({"origin_charges", "freight", "insurance"}),
    "DDP": frozenset(COSTS),
}
PRICED = tuple(_SELLER)


def payer(incoterm: str, cost: str) -> str:
    """``seller`` or ``buyer``: who pays ``cost`` under ``incoterm``."""
    try:
        seller = _SELLER[incoterm]
    except KeyError:
        raise CustomsInvalidError(
            f"landed cost is priced for {list(PRICED)}, not {incoterm!r}"
        ) from None
    if cost not in COSTS:
        raise CustomsInvalidError(f"unknown cost {cost!r}")
    return "seller" if cost in seller else "buyer"
