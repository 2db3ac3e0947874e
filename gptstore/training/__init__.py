"""Training: tiny models, fine-tuning and evaluation. Imports torch lazily."""
