"""Helpers shared by the tests. A module of its own (not conftest) because two conftest.py files exist and
``from conftest import ...`` would get whichever pytest imported last."""

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "cifar100-real"
PYTHON = sys.executable


# The one tiny config of the tests: a few seconds of real training on the CPU (synthetic data, timm's
# smallest ResNet). As --set items: tiny_overrides; as a YAML mapping: tiny_yaml; the app's tests use TINY.
TINY = {
    "data.source": "synthetic", "data.num_classes": 4, "data.train_size": 400, "data.test_size": 100,
    "data.synthetic_size": 16, "model.name": "test_resnet", "model.pretrained": False, "train.epochs": 1,
    "train.batch_size": 64, "train.log_interval": 1, "train.warmup_epochs": 0, "device": "cpu", "name": "tiny",
}


def tiny_overrides(root, **extra):
    """--set items for a few-second synthetic run writing under ``root``."""
    values = {**TINY, "output.root": str(root), **extra}
    return [f"{k}={v}" for k, v in values.items()]


def tiny_yaml(root, **extra) -> dict:
    """The same config as a nested mapping, for tests that write a YAML file."""
    nested: dict = {}
    for key, value in {**TINY, "output.root": str(root), **extra}.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def wait_until(predicate, timeout: float = 60.0, what: str = "the condition", every: float = 0.05, detail=None):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout`` seconds naming
    ``what`` was awaited, plus ``detail()`` (what to look at, read when it fails: log lines, states) if given."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    value = predicate()
    if not value:
        raise _timed_out(timeout, what, detail)
    return value


async def pilot_wait_until(pilot, predicate, timeout: float = 60.0, what: str = "the condition", every: float = 0.05,
                           detail=None):
    """wait_until for a Textual app under test: between polls the app runs (messages, workers, timers) through
    ``pilot.pause``. Returns the predicate's true value, or fails the same way."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        await pilot.pause(every)
    value = predicate()
    if not value:
        raise _timed_out(timeout, what, detail)
    return value


def wait_for_events(root, predicate, proc, what: str, timeout: float = 120, log: Path | None = None) -> Path:
    """The run folder under ``root`` once ``predicate(its events)`` holds; fails at once if ``proc`` (the
    process writing the run) exits first, showing ``log`` (the file it writes to), else its stderr pipe.
    Polled often: the tests signal or kill the trainer at a chosen step."""
    from cifartui.record.store import list_runs, read_events

    def reached():
        runs = list_runs(root)
        if runs and predicate(read_events(Path(runs[0].path) / "events.jsonl")[0]):
            return Path(runs[0].path)
        if proc.poll() is not None:
            output = log.read_text() if log is not None else proc.stderr.read()
            raise AssertionError(f"exited early: {proc.returncode}\n{output}")
        return None

    return wait_until(reached, timeout, what=what, every=0.02)


def _timed_out(timeout: float, what: str, detail) -> AssertionError:
    message = f"timed out after {timeout:g}s waiting for {what}"
    return AssertionError(message if detail is None else f"{message}: {detail()}")


# -- other processes a test needs alive: a run's writer, as the runs commands and the app see one ------------
@contextmanager
def live_pid():
    """The pid of a sleeping process on this host, alive until the block ends (then killed and waited for):
    the pid of a run's writer that still lives."""
    sleeper = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


@contextmanager
def hold_writer_lock(path):
    """Another process holding the writer lock of the run folder ``path`` (yielded, once it holds it) until the
    block ends; then it is killed and waited for, and the kernel drops the lock with it."""
    holder = subprocess.Popen([PYTHON, "-c", "import time; from cifartui.record.control import WriterLock\n"
                               f"WriterLock.acquire({str(path)!r}); print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", f"the lock holder took no lock (exit code {holder.poll()})"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# -- a real run with wrong labels (issue 13: suspects, cam, data.exclude; trained once per session) ---------
NOISY_COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 220), (230, 210, 40))


def noisy_folder(root, per_class=60, test_per_class=10, every=10) -> list[str]:
    """train/ and test/ class folders (c0..c3) of 16 px noisy colour patches; every ``every``-th training image
    of a class is filed under the next class. Returns the references (paths relative to root) of those."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    flipped = []
    for split, per in (("train", per_class), ("test", test_per_class)):
        for c, colour in enumerate(NOISY_COLOURS):
            for k in range(per):
                img = np.clip(np.array(colour) + rng.normal(0, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
                label = (c + 1) % len(NOISY_COLOURS) if split == "train" and k % every == 0 else c
                ref = f"{split}/c{label}/img{c}{k:03d}.png"
                (root / split / f"c{label}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / ref)
                if label != c:
                    flipped.append(ref)
    return flipped


def train_noisy_run(base):
    """(base, the run folder, the mislabelled refs): two epochs of timm's smallest ResNet on noisy_folder."""
    import yaml

    from cifartui.cli import main

    flipped = noisy_folder(base / "data")
    cfg = base / "noisy.yaml"
    cfg.write_text(yaml.safe_dump(tiny_yaml(base / "runs", **{
        "name": "noisy", "data.source": "imagefolder", "data.root": str(base / "data"), "data.augment": "none",
        "train.epochs": 2, "train.batch_size": 32, "train.lr": 0.003})))
    assert main(["--headless", "train", str(cfg)]) == 0
    (run,) = list((base / "runs").iterdir())
    return base, run, flipped
