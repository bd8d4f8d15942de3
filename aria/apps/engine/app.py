"""aria_engine's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_engine",
    layer=3,
    depends_on=("aria_data", "aria_queue"),
    summary="GTPyhop-style goal-task-network planner",
    build=placeholder_children,
    implemented=False,
)
