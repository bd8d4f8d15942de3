"""aria_interpret: structured interpretation of data."""
