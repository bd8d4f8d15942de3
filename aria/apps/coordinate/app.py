"""aria_coordinate's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_coordinate",
    layer=5,
    depends_on=("aria_auth",),
    summary="the API gateway: routing, authentication, rate limits",
    build=placeholder_children,
    implemented=False,
)
