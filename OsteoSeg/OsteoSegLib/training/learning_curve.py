"""The learning curve a training run writes beside its model: training and validation loss per epoch."""

from __future__ import annotations

import os

from ..atomic import atomic_path


def write_learning_curve(history: list[dict], path: str | os.PathLike, *, title: str = "") -> None:
    """Training and validation loss per epoch, the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [record["epoch"] for record in history]
    figure, axis = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    axis.plot(epochs, [r["train_loss"] for r in history], "o-", label="training")
    axis.plot(epochs, [r["validation_loss"] for r in history], "s-", label="validation")
    best = min(history, key=lambda r: r["validation_loss"])
    axis.axvline(best["epoch"], color="grey", linestyle=":", label=f"best (epoch {best['epoch']})")
    axis.set(xlabel="epoch", ylabel="loss (Dice + BCE)", title=title)
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
