"""The HTTP API (FastAPI): thin routes over the areas, one error path (api/errors.py).

Digital Link resolver and QR labels, public proofs, EPCIS capture and query, inspections,
alerts, the auditor and dashboard pages, and commerce (api/commerce/).
"""
