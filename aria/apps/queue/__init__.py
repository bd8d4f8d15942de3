"""aria_queue: durable background jobs in the spirit of Oban."""
