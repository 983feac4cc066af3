"""Another process writing a run, for the follow test: one epoch now, ``<run>/ready``, the rest when ``<run>/go``
appears (or after a minute).

    python writer.py ROOT RUN_ID
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: testkit is not installed
from testkit.runs import RunWriter  # noqa: E402


def main(root: str, run_id: str) -> None:
    writer = RunWriter.new(root, run_id)  # times of writing: the app follows it as a live run
    writer.start(["a", "b", "c"], name="writer", epochs=2, steps_per_epoch=4, train_size=12, val_size=3, test_size=3,
                 model="resnet18", dataset="synthetic", pid=os.getpid())
    writer.step(1, 4, 4, loss=1.0, acc=0.5, lr=0.1, images_per_second=10.0)
    writer.end_epoch(1, val_acc=0.4, train_loss=1.0, train_acc=0.5, val_loss=1.1, val_top5=1.0, lr=0.1,
                     epoch_seconds=1.0, images_per_second=10.0)
    (writer.path / "ready").write_text("1")
    deadline = time.monotonic() + 60
    while not (writer.path / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.step(2, 4, 4, loss=0.8, acc=0.6, lr=0.05, images_per_second=11.0)
    writer.end_epoch(2, val_acc=0.6, train_loss=0.8, train_acc=0.6, val_loss=0.9, val_top5=1.0, lr=0.05,
                     epoch_seconds=1.0, images_per_second=11.0)
    writer.log("writer done")
    writer.end("completed", "finished 2 epochs", epochs_done=2, best_val_acc=writer.best_val_acc,
               best_epoch=writer.best_epoch)
    writer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
