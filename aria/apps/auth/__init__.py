"""aria_auth: identities, tokens, OAuth2/OIDC, RBAC/ABAC, MFA and WebRTC credentials."""
