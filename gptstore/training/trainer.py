"""transformers' ``Trainer`` set up for gptstore: device and precision, one progress bar, the
library versions recorded in provenance."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .data import Blocks
    from .config import FinetuneConfig


def device_for(requested: str, torch: Any) -> str:
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise UsageError(f"device {requested} was asked for but is not available", hint="use --device cpu or auto")
    return requested


def precision_for(requested: str, device: str, torch: Any) -> str:
    if requested == "auto":
        return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if requested == "fp16" and device != "cuda":
        raise UsageError("fp16 training needs a CUDA device", hint="use --precision bf16 or fp32")
    return requested


def frameworks() -> dict[str, str]:
    import platform
    from importlib.metadata import version

    from .. import __version__

    libraries = ("torch", "transformers", "accelerate", "tokenizers", "safetensors")  # all needed to train
    return {"gptstore": __version__, "python": platform.python_version()} | {d: version(d) for d in libraries}


def progress_callback() -> Any:
    from tqdm import tqdm
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """One bar on stderr: steps, and the last logged training loss."""

        bar: Any = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="fine-tuning",
                            unit="step", file=sys.stderr, dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.close()

    return Progress()


def make_trainer(model: Any, blocks: Blocks, workdir: Path, config: FinetuneConfig, device: str,
                 precision: str, progress: bool) -> Any:
    from transformers import Trainer, TrainingArguments, default_data_collator
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    args = TrainingArguments(
        output_dir=str(workdir), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup, weight_decay=config.weight_decay,
        logging_strategy="steps", logging_steps=config.logging_steps, save_strategy="steps",
        save_steps=config.save_steps, save_total_limit=1, eval_strategy="no", report_to="none",
        disable_tqdm=True, seed=config.seed, data_seed=config.seed, use_cpu=device == "cpu",
        bf16=precision == "bf16", fp16=precision == "fp16", dataloader_num_workers=0,
        remove_unused_columns=False)
    # evaluation is not the Trainer's: finetune measures held-out documents with gptstore.perplexity,
    # exactly as `gptstore eval` does, so there is no eval dataset here
    trainer = Trainer(model=model, args=args, data_collator=default_data_collator,
                      train_dataset=blocks.examples())
    trainer.remove_callback(PrinterCallback)  # prints log dicts to stdout
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(progress_callback())
    return trainer


class GracefulStop:
    """Ctrl-C during training: the first finishes the current optimizer step, saves a checkpoint and
    stops the Trainer (so a re-run resumes there, losing nothing); a second one aborts at once
    (``KeyboardInterrupt``). Only the main thread can take SIGINT; elsewhere this does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # the next Ctrl-C aborts
        sys.stderr.write("\nstopping after this step to save a checkpoint (Ctrl-C again to abort)\n")

    def callback(self) -> Any:
        from transformers import TrainerCallback

        stop = self

        class StopWhenAsked(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if stop.requested:
                    control.should_save = True
                    control.should_training_stop = True
                return control

        return StopWhenAsked()
