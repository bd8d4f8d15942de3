"""aria_interface's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_interface",
    layer=4,
    depends_on=("aria_data", "aria_storage", "aria_queue"),
    summary="data ingestion and web UI",
    build=placeholder_children,
    implemented=False,
)
