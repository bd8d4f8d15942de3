"""aria_queue's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_queue",
    layer=2,
    depends_on=("aria_data",),
    summary="durable background jobs in the spirit of Oban",
    build=placeholder_children,
    implemented=False,
)
