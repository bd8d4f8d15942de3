"""aria_tune's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_tune",
    layer=5,
    depends_on=("aria_monitor",),
    summary="optimise configuration from measurements",
    build=placeholder_children,
    implemented=False,
)
