"""Payments: the provider interface, Stripe, manual bank transfer / letter of credit, retries."""
