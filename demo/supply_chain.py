"""A deterministic multi-tier supply chain as EPCIS 2.0 events, with known trace answers.

farms --harvest--> farm lots --ship/receive--> packers --pack (transformation)--> packed lots
--ship/receive--> processors --transformation (3 packed lots in)--> a product lot and its
serialised items --aggregate at a distribution centre--> pallets (SSCC) --ship/receive-->
retailers.

Each packed lot feeds three consecutive product lots (product lot j takes packed lots j, j+1,
j+2), so a farm lot reaches several products: a recall of one has siblings. Everything follows
from the seed (farm, packer, retailer choices; quantities); :meth:`SupplyChain.answers` computes
the expected backward and forward sets of any item from the model itself, not from the graph,
so a trace can be checked against it. About 16 events per product lot: ``for_events(1_000_000)``
gives a chain of a million events.

    python -m demo.supply_chain --events 5000 --seed 7   # prints counts and one sampled answer
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tracehub.gs1 import check_digit

__all__ = ["Answers", "SupplyChain"]

PREFIX = "9506000"
EVENTS_PER_LOT = 16
_START = datetime(2026, 1, 1, tzinfo=UTC)


def _gtin(ref: str) -> str:
    body = "0" + PREFIX + ref
    return body + str(check_digit(body))


def _gln(ref: int) -> str:
    body = f"{PREFIX}{ref:05d}"
    return body + str(check_digit(body))


@dataclass(frozen=True)
class Answers:
    """What a trace of ``item`` must find (node ids, ingest/genealogy/ids.py)."""

    item: str
    backward: frozenset[str]
    forward: frozenset[str]
    farm_lots: tuple[str, ...]
    #: forward from each farm lot: every sibling product, item, pallet and destination
    farm_forward: dict[str, frozenset[str]]


@dataclass(frozen=True)
class SupplyChain:
    """The chain's shape; the seed decides everything else."""

    product_lots: int
    seed: int = 1
    farms: int = 40
    packers: int = 8
    processors: int = 3
    dcs: int = 5
    retailers: int = 60
    pallets_per_lot: int = 3
    items_per_pallet: int = 4

    @classmethod
    def for_events(cls, events: int, seed: int = 1) -> SupplyChain:
        return cls(product_lots=max(1, events // EVENTS_PER_LOT), seed=seed)

    # -- identifiers
    G_FARM, G_PACK, G_PROD = _gtin("10001"), _gtin("20002"), _gtin("30003")

    @staticmethod
    def lgtin(gtin: str, lot: str) -> str:
        return f"urn:epc:class:lgtin:{PREFIX}.{gtin[0]}{gtin[8:13]}.{lot}"

    @staticmethod
    def sgln(gln: str) -> str:
        return f"urn:epc:id:sgln:{PREFIX}.{gln[7:12]}.0"

    def farm_lot(self, k: int) -> str:
        return f"F{k:07d}"

    def packed_lot(self, k: int) -> str:
        return f"K{k:07d}"

    def product_lot(self, j: int) -> str:
        return f"P{j:07d}"

    def item_serial(self, j: int, n: int) -> str:
        return f"{j}x{n}"

    def pallet_ref(self, j: int, q: int) -> str:
        return f"1{j * self.pallets_per_lot + q:09d}"

    def farm_of(self, k: int) -> int:
        return random.Random(self.seed * 1_000_003 + k).randrange(self.farms)

    def retailer_of(self, j: int, q: int) -> int:
        return random.Random(self.seed * 7_000_001 + j * 31 + q).randrange(self.retailers)

    def farm_gln(self, f: int) -> str:
        return _gln(10000 + f)

    def packer_gln(self, k: int) -> str:
        return _gln(20000 + k % self.packers)

    def processor_gln(self, k: int) -> str:
        return _gln(30000 + k % self.processors)

    def dc_gln(self, j: int) -> str:
        return _gln(40000 + j % self.dcs)

    def retailer_gln(self, r: int) -> str:
        return _gln(50000 + r)

    @property
    def farm_lot_count(self) -> int:
        return self.product_lots + 2

    # -- events
    def events(self) -> Iterator[dict[str, Any]]:
        """Every event, in time order (one minute apart)."""
        minute = 0

        def ev(kind: str, **fields: Any) -> dict[str, Any]:
            nonlocal minute
            minute += 1
            at = _START + timedelta(minutes=minute)
            return {
                "type": kind,
                "eventTime": at.isoformat(),
                "eventTimeZoneOffset": "+00:00",
                **fields,
            }

        for k in range(self.farm_lot_count):
            yield from self._farm_events(k, ev)
            j = k - 2  # product lot j needs packed lots j..j+2: all made now
            if j >= 0:
                yield from self._product_events(j, ev)

    def _farm_events(self, k: int, ev: Any) -> Iterator[dict[str, Any]]:
        farm = self.sgln(self.farm_gln(self.farm_of(k)))
        packer, processor = self.sgln(self.packer_gln(k)), self.sgln(self.processor_gln(k))
        farm_lot = self.lgtin(self.G_FARM, self.farm_lot(k))
        packed = self.lgtin(self.G_PACK, self.packed_lot(k))
        kilos = 800 + random.Random(self.seed + k).randrange(400)
        # fmt: off
        yield ev(
            "ObjectEvent",
            action="ADD",
            bizStep="harvesting",
            bizLocation={"id": farm},
            quantityList=[{"epcClass": farm_lot, "quantity": kilos, "uom": "KGM"}],
        )
        yield ev(
            "ObjectEvent",
            action="OBSERVE",
            bizStep="shipping",
            bizLocation={"id": farm},
            quantityList=[{"epcClass": farm_lot, "quantity": kilos, "uom": "KGM"}],
            destinationList=[{"type": "location", "destination": packer}],
        )
        yield ev(
            "ObjectEvent",
            action="OBSERVE",
            bizStep="receiving",
            bizLocation={"id": packer},
            quantityList=[{"epcClass": farm_lot, "quantity": kilos, "uom": "KGM"}],
        )
        yield ev(
            "TransformationEvent",
            bizStep="packing",
            bizLocation={"id": packer},
            inputQuantityList=[{"epcClass": farm_lot, "quantity": kilos, "uom": "KGM"}],
            outputQuantityList=[{"epcClass": packed, "quantity": kilos // 10, "uom": "CT"}],
        )
        yield ev(
            "ObjectEvent",
            action="OBSERVE",
            bizStep="shipping",
            bizLocation={"id": packer},
            quantityList=[{"epcClass": packed, "quantity": kilos // 10, "uom": "CT"}],
            destinationList=[{"type": "location", "destination": processor}],
        )
        yield ev("ObjectEvent", action="OBSERVE", bizStep="receiving",
                 bizLocation={"id": processor},
                 quantityList=[{"epcClass": packed, "quantity": kilos // 10, "uom": "CT"}])
        # fmt: on

    def _items(self, j: int) -> list[str]:
        ref = f"{self.G_PROD[0]}{self.G_PROD[8:13]}"
        count = self.pallets_per_lot * self.items_per_pallet
        return [f"urn:epc:id:sgtin:{PREFIX}.{ref}.{self.item_serial(j, n)}" for n in range(count)]

    def _product_events(self, j: int, ev: Any) -> Iterator[dict[str, Any]]:
        items = self._items(j)
        dc = self.sgln(self.dc_gln(j))
        yield ev(
            "TransformationEvent", bizStep="transforming",
            bizLocation={"id": self.sgln(self.processor_gln(j))},
            inputQuantityList=[
                {"epcClass": self.lgtin(self.G_PACK, self.packed_lot(k)), "quantity": 20,
                 "uom": "CT"} for k in (j, j + 1, j + 2)],
            outputEPCList=items,
            outputQuantityList=[{"epcClass": self.lgtin(self.G_PROD, self.product_lot(j)),
                                 "quantity": len(items)}],
        )  # fmt: skip
        for q in range(self.pallets_per_lot):
            pallet = f"urn:epc:id:sscc:{PREFIX}.{self.pallet_ref(j, q)}"
            children = items[q * self.items_per_pallet : (q + 1) * self.items_per_pallet]
            store = self.sgln(self.retailer_gln(self.retailer_of(j, q)))
            yield ev(
                "AggregationEvent",
                action="ADD",
                bizStep="packing",
                parentID=pallet,
                childEPCs=children,
                bizLocation={"id": dc},
            )
            yield ev(
                "ObjectEvent",
                action="OBSERVE",
                bizStep="shipping",
                epcList=[pallet],
                bizLocation={"id": dc},
                destinationList=[{"type": "location", "destination": store}],
            )
            yield ev("ObjectEvent", action="OBSERVE", bizStep="receiving", epcList=[pallet],
                     bizLocation={"id": store})  # fmt: skip

    # -- known answers
    def _lot(self, gtin: str, lot: str) -> str:
        return f"lot:{gtin}/{lot}"

    def _product_forward(self, j: int) -> set[str]:
        out = {self._lot(self.G_PROD, self.product_lot(j))}
        for q in range(self.pallets_per_lot):
            out.add(f"sscc:{self._sscc(j, q)}")
            out.add(f"gln:{self.retailer_gln(self.retailer_of(j, q))}")
            for n in range(q * self.items_per_pallet, (q + 1) * self.items_per_pallet):
                out.add(f"item:{self.G_PROD}/{self.item_serial(j, n)}")
        return out

    def _sscc(self, j: int, q: int) -> str:
        ref = self.pallet_ref(j, q)
        body = ref[0] + PREFIX + ref[1:]
        return body + str(check_digit(body))

    def answers(self, j: int, n: int) -> Answers:
        """Expected traces of item ``n`` of product lot ``j``."""
        q = n // self.items_per_pallet
        item = f"item:{self.G_PROD}/{self.item_serial(j, n)}"
        ks = (j, j + 1, j + 2)
        backward = {self._lot(self.G_PACK, self.packed_lot(k)) for k in ks}
        backward |= {self._lot(self.G_FARM, self.farm_lot(k)) for k in ks}
        backward |= {f"gln:{self.farm_gln(self.farm_of(k))}" for k in ks}
        backward.add(self._lot(self.G_PROD, self.product_lot(j)))  # the lot it is an instance of
        forward = {f"sscc:{self._sscc(j, q)}", f"gln:{self.retailer_gln(self.retailer_of(j, q))}"}
        farm_forward = {}
        for k in ks:
            reach = {
                f"gln:{self.packer_gln(k)}",
                self._lot(self.G_PACK, self.packed_lot(k)),
                f"gln:{self.processor_gln(k)}",
            }
            for p in (k - 2, k - 1, k):
                if 0 <= p < self.product_lots:
                    reach |= self._product_forward(p)
            farm_forward[self._lot(self.G_FARM, self.farm_lot(k))] = frozenset(reach)
        return Answers(
            item=item,
            backward=frozenset(backward),
            forward=frozenset(forward),
            farm_lots=tuple(self._lot(self.G_FARM, self.farm_lot(k)) for k in ks),
            farm_forward=farm_forward,
        )

    def sample(self, count: int, seed: int = 0) -> list[tuple[int, int]]:
        """``count`` (product lot, item) pairs, spread over the chain."""
        rng = random.Random(self.seed * 31 + seed)
        per = self.pallets_per_lot * self.items_per_pallet
        return [(rng.randrange(self.product_lots), rng.randrange(per)) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.supply_chain", description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    chain = SupplyChain.for_events(args.events, args.seed)
    total = sum(1 for _ in chain.events())
    print(f"{chain.product_lots} product lots, {total} events")
    j, n = chain.sample(1)[0]
    answers = chain.answers(j, n)
    print(f"item {answers.item}: {len(answers.backward)} upstream, {len(answers.forward)} down")


if __name__ == "__main__":
    main()
