"""aria_auth's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_auth",
    layer=2,
    depends_on=("aria_security", "aria_data"),
    summary="identities, tokens, OAuth2/OIDC, RBAC/ABAC, MFA and WebRTC credentials",
    build=placeholder_children,
    implemented=False,
)
