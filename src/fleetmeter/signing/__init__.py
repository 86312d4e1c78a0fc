"""Request signing (shared-secret device auth) and signed documents (Ed25519) — leaf package."""
