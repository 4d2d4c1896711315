"""Landed cost of goods per Incoterm, in the buyer's currency, every component with its source.

Rounding follows commerce/money.py: each amount is converted once to the buyer's currency
(`money.convert`, half-even to the minor unit), and each duty and VAT amount is rounded once,
per line, half-even to the minor unit. The customs value follows the destination's basis
(tariff_rates.valuation): CIF (EU: goods, origin charges, freight and insurance to the border)
or FOB (US: international freight and insurance excluded, 19 U.S.C. 1401a). Freight, insurance
and origin charges are spread over the lines in proportion to their value (largest remainder,
so the shares add up exactly). VAT is charged on customs value plus duty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from commerce import money
from commerce.customs.errors import CustomsNotFoundError
from commerce.customs.incoterms import PRICED, payer
from commerce.customs.tariffs import TariffRate


@dataclass(frozen=True)
class Goods:
    """One line: product, its HS subheading, quantity and unit price (in the quote currency)."""

    gtin: str
    hs6: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class Costs:
    """Estimates in the quote currency (minor units) the landed cost adds to the goods."""

    freight_minor: int = 0
    insurance_minor: int = 0
    origin_charges_minor: int = 0


@dataclass(frozen=True)
class Component:
    cost: str
    payer: str
    amount_minor: int
    amount: str
    source: str
    line_no: int | None = None
    rate_pct: str | None = None


@dataclass(frozen=True)
class LandedCost:
    incoterm: str
    currency: str
    destination: str
    goods_minor: int
    seller_price_minor: int
    buyer_landed_minor: int
    components: tuple[Component, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["components"] = [asdict(c) for c in self.components]
        for name in ("goods", "seller_price", "buyer_landed"):
            out[name] = money.format_amount(out[f"{name}_minor"], self.currency)
        return out


def percent(minor: int, pct: Decimal) -> int:
    """``pct`` percent of ``minor`` units, rounded once, half-even, to a whole minor unit."""
    return int((Decimal(minor) * pct / 100).quantize(Decimal(1), rounding=money.ROUNDING))


def spread(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder: the parts sum to it)."""
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


@dataclass(frozen=True)
class Fx:
    """Quote currency -> buyer currency (rate 1 and no source when they are the same)."""

    source_currency: str
    target_currency: str
    rate: Decimal = Decimal(1)
    source: str = ""

    def __call__(self, minor: int) -> int:
        return money.convert(minor, self.source_currency, self.target_currency, self.rate)

    def cited(self) -> str:
        if self.source_currency == self.target_currency:
            return "no conversion"
        return f"FX 1 {self.source_currency} = {self.rate} {self.target_currency} ({self.source})"


def landed_costs(
    goods: list[Goods],
    costs: Costs,
    rates: dict[str, TariffRate],
    fx: Fx,
    destination: str,
    incoterms: tuple[str, ...] = PRICED,
) -> list[LandedCost]:
    """The landed cost under each of ``incoterms`` (the components do not depend on the rule,
    only who pays them)."""
    missing = sorted({g.hs6 for g in goods} - set(rates))
    if missing:
        raise CustomsNotFoundError(f"no duty/VAT rate for HS {missing} into {destination}")
    cur = fx.target_currency
    values = [fx(g.quantity * g.unit_price_minor) for g in goods]
    extra = {
        "origin_charges": fx(costs.origin_charges_minor),
        "freight": fx(costs.freight_minor),
        "insurance": fx(costs.insurance_minor),
    }
    estimate = f"estimate given with the quote; {fx.cited()}"
    lines: list[tuple[str, int | None, int, str, Decimal | None]] = [
        (cost, None, amount, estimate, None) for cost, amount in extra.items() if amount
    ]
    shares = {cost: spread(amount, values) for cost, amount in extra.items()}
    for i, g in enumerate(goods):
        rate = rates[g.hs6]
        value = values[i] + shares["origin_charges"][i]
        if rate.valuation == "CIF":
            value += shares["freight"][i] + shares["insurance"][i]
        duty = percent(value, rate.duty_pct)
        vat = percent(value + duty, rate.vat_pct)
        basis = f"HS {rate.national_code} {rate.valuation} value {money.format_amount(value, cur)}"
        lines.append(("import_duty", i + 1, duty, f"{basis}; {rate.cited()}", rate.duty_pct))
        lines.append(("import_vat", i + 1, vat, f"{basis} + duty; {rate.cited()}", rate.vat_pct))
    goods_minor = sum(values)
    out = []
    for term in incoterms:
        components = tuple(
            Component(
                cost=cost,
                payer=payer(term, cost),
                amount_minor=amount,
                amount=money.format_amount(amount, cur),
                source=source,
                line_no=line_no,
                rate_pct=None if pct is None else format(pct.normalize(), "f"),
            )
            for cost, line_no, amount, source, pct in lines
        )
        seller = goods_minor + sum(c.amount_minor for c in components if c.payer == "seller")
        buyer = seller + sum(c.amount_minor for c in components if c.payer == "buyer")
        out.append(LandedCost(term, cur, destination, goods_minor, seller, buyer, components))
    return out
