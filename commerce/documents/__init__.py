"""Trade documents generated from the order and shipment: commercial invoice, packing list,
certificate-of-origin application; JSON (UN/CEFACT CII names) and PDF, anchored and versioned."""
