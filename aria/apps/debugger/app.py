"""aria_debugger's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_debugger",
    layer=5,
    depends_on=(),
    summary="inspect and reconfigure the live system",
    build=placeholder_children,
    implemented=False,
)
