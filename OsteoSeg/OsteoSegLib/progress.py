"""Progress reporting for long runs: a callback interface (the Slicer module hooks its progress bar
and Cancel button to it) and a terminal implementation with tqdm."""

from __future__ import annotations


class CancelledError(Exception):
    """The user asked to stop; the last completed epoch's checkpoint is kept for resuming."""


class Progress:
    """Called by training and inference; every method is optional to override. `cancelled` is polled
    before every batch."""

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        pass

    def step_done(self, epoch: int, step: int, steps: int, loss: float) -> None:
        pass

    def epoch_done(self, record: dict) -> None:
        pass

    def slices_done(self, done: int, total: int) -> None:
        """Inference: `done` of `total` slices have gone through every model."""

    def message(self, text: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


class TerminalProgress(Progress):
    """A tqdm bar per epoch and one summary line after it, on standard error."""

    def __init__(self):
        self._bar = None

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        from tqdm import tqdm

        # disable=None: no bar when the output is not a terminal (logs, batch jobs), lines only.
        self._bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False, disable=None)

    def step_done(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}")
            self._bar.update(1)

    def epoch_done(self, record: dict) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.message(f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, validation loss "
                     f"{record['validation_loss']:.4f}, {record['slices_per_second']:.1f} slices/s"
                     + (" (best)" if record["best"] else ""))

    def message(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text)
