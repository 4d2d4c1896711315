"""Customs: HS classification, the duty/VAT table, landed cost per Incoterm, clearance steps."""
