"""aria_coordinate: the API gateway: routing, authentication, rate limits."""
