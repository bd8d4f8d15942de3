"""aria_security: OpenBao secrets, per-app identities and transit encryption."""
