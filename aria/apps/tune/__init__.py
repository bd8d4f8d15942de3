"""aria_tune: optimise configuration from measurements."""
