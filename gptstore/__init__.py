"""gptstore."""
