"""Training: the fine-tune config and methods (``config``, ``full``), data (``data``), the run
(``finetune``, ``trainer``, ``checkpoints``) and tiny models (``tiny``). Imports torch lazily.

Its layer is beside :mod:`gptstore.pulling`, under :mod:`gptstore.model` and
:mod:`gptstore.evaluation` (the README's Layout; ``lint-imports`` enforces it): it imports neither
the model front door nor the engines, and nothing beneath it (verification, the library, the
engines) imports it. The perplexity maths it shares with them is :mod:`gptstore.perplexity`, and
``gptstore eval`` is :mod:`gptstore.evaluation`."""
