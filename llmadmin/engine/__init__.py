"""The execution engine: many LLM calls in flight per worker process, under shared limits."""
