"""aria_workflow's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_workflow",
    layer=4,
    depends_on=("aria_data", "aria_queue", "aria_engine"),
    summary="standard operating procedures: define, validate, run durably",
    build=placeholder_children,
    implemented=False,
)
