"""Another process writing a run, for the follow test: one epoch now, the rest when ``<run>/go`` appears.

    python writer.py ROOT RUN_ID
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from cifartui.record.events import EpochEnd, Log, RunEnded, RunStarted, Step
from cifartui.record.store import RunStore


def main(root: str, run_id: str) -> None:
    path = Path(root) / run_id
    (path / "eval").mkdir(parents=True, exist_ok=True)
    store = RunStore(path)
    store(RunStarted(run_id=run_id, name="writer", device="cpu", num_classes=3, class_names=["a", "b", "c"], epochs=2,
                     steps_per_epoch=4, train_size=12, val_size=3, test_size=3, model="resnet18", dataset="synthetic",
                     pid=os.getpid(), host=socket.gethostname()))
    store(Step(epoch=1, step=4, steps=4, loss=1.0, acc=0.5, lr=0.1, images_per_second=10.0))
    store(EpochEnd(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.1, val_acc=0.4, val_top5=1.0, lr=0.1,
                   epoch_seconds=1.0, images_per_second=10.0, is_best=True, best_val_acc=0.4))
    (path / "ready").write_text("1")
    deadline = time.time() + 60
    while not (path / "go").exists() and time.time() < deadline:
        time.sleep(0.05)
    store(Step(epoch=2, step=4, steps=4, loss=0.8, acc=0.6, lr=0.05, images_per_second=11.0))
    store(EpochEnd(epoch=2, train_loss=0.8, train_acc=0.6, val_loss=0.9, val_acc=0.6, val_top5=1.0, lr=0.05,
                   epoch_seconds=1.0, images_per_second=11.0, is_best=True, best_val_acc=0.6))
    store(Log(message="writer done"))
    store(RunEnded(status="completed", reason="finished 2 epochs", epochs_done=2, best_val_acc=0.6, best_epoch=2))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
