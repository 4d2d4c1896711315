"""PKI tooling: CAs, device enrolment and revocation (issue 3). Keys are never committed."""
