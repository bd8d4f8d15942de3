"""aria_data's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_data",
    layer=1,
    depends_on=("aria_security",),
    summary="CockroachDB/PostgreSQL as a managed child, the data layer and migrations",
    build=placeholder_children,
    implemented=False,
)
