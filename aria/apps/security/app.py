"""aria_security's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_security",
    layer=1,
    depends_on=(),
    summary="OpenBao secrets, per-app identities and transit encryption",
    build=placeholder_children,
    implemented=False,
)
