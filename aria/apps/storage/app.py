"""aria_storage's place in the boot tree (a placeholder until its issue is done)."""

from aria.application import App, placeholder_children

APP = App(
    name="aria_storage",
    layer=2,
    depends_on=("aria_data",),
    summary="desync/casync-compatible content-addressed asset storage (local, S3, SFTP, HTTP)",
    build=placeholder_children,
    implemented=False,
)
