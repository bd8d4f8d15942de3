"""aria_shape's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_shape",
    layer=3,
    depends_on=("aria_data", "aria_storage", "aria_queue", "aria_engine"),
    summary="character generation with Qwen3-architecture models and GRPO training",
    build=placeholder_children,
    implemented=False,
)
