"""aria_monitor's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_monitor",
    layer=5,
    depends_on=("aria_data",),
    summary="metrics, health and the dashboard",
    build=placeholder_children,
    implemented=False,
)
