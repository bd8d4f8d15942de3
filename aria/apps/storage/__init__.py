"""aria_storage: desync/casync-compatible content-addressed asset storage (local, S3, SFTP, HTTP)."""
