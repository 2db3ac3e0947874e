"""Training: the fine-tune config and methods (``config``, ``full``), data (``data``), the run
(``finetune``, ``trainer``, ``checkpoints``) and tiny models (``tiny``). Imports torch lazily.

Nothing below this package (the model front door, the engines, the library) imports it; the
perplexity maths it shares with them is :mod:`gptstore.perplexity`, and ``gptstore eval`` is
:mod:`gptstore.evaluation`."""
