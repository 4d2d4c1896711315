"""Stack: `make up` / `make down` of the local stack (these tests stop and start its services)."""
