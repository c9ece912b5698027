"""What a training run prints: one line per epoch (and the metrics row), by rank 0 alone under torchrun."""

from __future__ import annotations

from agents import distributed
from agents.runlog import RunLog


def report_epoch(log: RunLog | None, row: dict[str, float], improved: bool) -> None:
    """Rank 0: the epoch's metrics row (CSV and TensorBoard) and its progress line."""
    if log is None:
        return
    log.write(**row)
    glimpses = "" if row.get("glimpses") is None else f"glimpses {row['glimpses']:.2f}  "
    print(
        f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  train acc {row['train_accuracy']:.2f}%  "
        f"val error {row['val_error']:.2f}%{' *' if improved else '  '}  lr {row['lr']:.2e}  "
        f"{glimpses}"
        f"{row['epoch_seconds']:.1f}s  ({row['elapsed_seconds'] / 60:.1f} min)",
        flush=True,
    )


def print_main(text: str) -> None:
    """Progress lines, printed by rank 0 alone."""
    if distributed.is_main():
        print(text, flush=True)
