"""aria_interpret's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_interpret",
    layer=3,
    depends_on=("aria_data",),
    summary="structured interpretation of data",
    build=placeholder_children,
    implemented=False,
)
