"""API: sign-in and roles, resolver and QR pages, dashboard, auditor view, OpenAPI fuzzing."""
