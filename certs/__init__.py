"""PKI tooling: CAs, device enrolment and revocation (issue 3). Generated keys are never committed."""
