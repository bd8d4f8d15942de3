"""aria_shape: character generation with Qwen3-architecture models and GRPO training."""
