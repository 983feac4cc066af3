"""Readers that never crash: a real tiny run, copied and damaged one file at a time. `runs` lists it (as
`unreadable`, with the reason, when nothing can be read); show, report and export print what they can plus a
line naming the damaged file (exit 0), or exit 2 with a message when nothing could be read; the app starts,
lists the run and opens it. Also: atomically written files follow the umask.

Unreadable files are simulated with a folder where the file should be: the tests run as root here, where
chmod 000 blocks nothing (the chmod case runs only as another user)."""
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from support import REPO, pilot_wait_until, tiny_overrides


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "cifartui", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from cifartui.cli import main

    root = tmp_path_factory.mktemp("source")
    args = ["--headless", "train", str(REPO / "configs" / "demo.yaml")]
    for item in tiny_overrides(root):
        args += ["--set", item]
    assert main(args) == 0
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    assert (run / "eval" / "test_e001.npz").exists() and (run / "samples_test.npz").exists()
    return run


def _replace_with_dir(rel):
    def damage(run):
        p = run / rel
        p.unlink()
        p.mkdir()
    return damage


def _write(rel, data):
    def damage(run):
        (run / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return damage


def _truncate(rel, keep=0.5):
    def damage(run):
        b = (run / rel).read_bytes()
        (run / rel).write_bytes(b[: int(len(b) * keep)])
    return damage


def _cut_mid_line(rel, keep=0.6):
    """Cut a line file inside a line (never right after a newline, which would leave whole lines only)."""
    def damage(run):
        b = (run / rel).read_bytes()
        end = int(len(b) * keep)
        while b[end - 1:end] == b"\n" or b[end:end + 1] == b"\n":
            end -= 1
        (run / rel).write_bytes(b[:end])
    return damage


def _evals(fn):
    return lambda run: [fn(p) for p in sorted((run / "eval").glob("*.npz"))]


def _drop_confusion(path):
    import numpy as np

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "confusion"}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


GARBAGE = bytes(range(256)) * 8
# name: (damage, the file the problem line names; None: no problem to name)
DAMAGES = {
    "eval-truncated": (_evals(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])), "eval/test_e001.npz"),
    "eval-missing": (_evals(lambda p: p.unlink()), "eval/test_e001.npz: missing"),
    "eval-no-confusion": (_evals(_drop_confusion), "eval/test_e001.npz: damaged: no 'confusion'"),
    "eval-garbage": (_evals(lambda p: p.write_bytes(GARBAGE)), "eval/test_e001.npz"),
    "samples-truncated": (_truncate("samples_test.npz"), "samples_test.npz"),
    "config-not-utf8": (_write("config.yaml", "name: caf\xe9\n".encode("latin-1")), "config.yaml: not UTF-8"),
    "config-is-a-dir": (_replace_with_dir("config.yaml"), "config.yaml: a folder"),
    "config-bomb": (_write("config.yaml", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                          "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"),
                    "config.yaml: not readable YAML"),
    "events-is-a-dir": (_replace_with_dir("events.jsonl"), "events.jsonl: a folder"),
    "events-cut-mid-line": (_cut_mid_line("events.jsonl"), "events.jsonl: the last line is cut off"),
    "events-garbage": (_write("events.jsonl", GARBAGE), "events.jsonl: no readable events"),
    "summary-a-list": (_write("summary.json", "[1, 2, 3]"), "summary.json: not a JSON object"),
    "summary-a-string": (_write("summary.json", '"completed"'), "summary.json: not a JSON object"),
    "summary-numbers-as-strings": (_write("summary.json", json.dumps(
        {"status": "completed", "epochs_done": "1", "epochs": "one", "best_val_acc": "0.5", "test_acc": [1],
         "world_size": "two", "name": 7, "started": "yesterday"})), "summary.json: "),
    "summary-is-a-dir": (_replace_with_dir("summary.json"), "summary.json: a folder"),
    "summary-garbage": (_write("summary.json", GARBAGE), "summary.json: not UTF-8"),
    "classes-empty": (_write("classes.json", b""), "classes.json: not valid JSON"),
    "classes-a-dict": (_write("classes.json", '{"a": 1}'), "classes.json: not a list"),
    "classes-is-a-dir": (_replace_with_dir("classes.json"), "classes.json: a folder"),
}


def _damaged_root(tiny_run, tmp_path, damage):
    root = tmp_path / "runs"
    run = root / tiny_run.name
    shutil.copytree(tiny_run, run)
    damage(run)
    return root, run


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DAMAGES))
def test_readers_show_what_they_can_and_name_the_damaged_file(tiny_run, tmp_path, name):
    damage, named = DAMAGES[name]
    root, run = _damaged_root(tiny_run, tmp_path, damage)

    listed = cli("runs", "--root", str(root), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["id"] == run.name and row["status"] != "unreadable"

    shown = cli("show", run.name, "--root", str(root), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert any(named in p for p in data["problems"]), data["problems"]
    text = cli("show", run.name, "--root", str(root))
    assert text.returncode == 0 and "damaged: " in text.stdout and "Traceback" not in text.stderr

    md = tmp_path / "out" / "report.md"
    report = cli("report", run.name, "--root", str(root), "-o", str(md))
    assert report.returncode == 0, report.stderr
    assert "damaged: " in report.stderr and "## Damaged files" in md.read_text()

    csv = tmp_path / "out" / "x.csv"
    export = cli("export", run.name, "--root", str(root), "-o", str(csv))
    assert export.returncode == 0, export.stderr
    assert "damaged: " in export.stderr and csv.read_text().startswith("epoch,")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["dirs", "garbage"])
def test_a_run_nothing_can_be_read_of_is_listed_unreadable_and_refused_with_exit_2(tiny_run, tmp_path, how):
    def damage(run):
        for rel in ("summary.json", "events.jsonl"):
            (_replace_with_dir(rel) if how == "dirs" else _write(rel, GARBAGE))(run)

    root, run = _damaged_root(tiny_run, tmp_path, damage)
    healthy = root / "20000101-000000-healthy"
    shutil.copytree(tiny_run, healthy)
    listed = cli("runs", "--root", str(root), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows[run.name]["status"] == "unreadable" and "events.jsonl" in rows[run.name]["reason"]
    assert rows[healthy.name]["status"] == "completed"
    table = cli("runs", "--root", str(root))
    assert table.returncode == 0 and "unreadable" in table.stdout
    for args in (["show", run.name], ["show", run.name, "--json"], ["report", run.name], ["export", run.name]):
        out = cli(*args, "--root", str(root))
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and "nothing could be read" in out.stderr
        assert "events.jsonl" in out.stderr and "Traceback" not in out.stderr


def _flip_compressed_bytes(path, member="confusion.npy"):
    """Damage inside a member's deflate stream, the zip's table of contents intact: only reading the array
    finds it (zlib.error, or a CRC mismatch)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    data = bytearray(path.read_bytes())
    head = info.header_offset
    start = head + 30 + int.from_bytes(data[head + 26:head + 28], "little") + int.from_bytes(data[head + 28:head + 30], "little")
    middle = start + info.compress_size // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_an_evaluation_damaged_inside_its_compressed_data_is_named_not_a_crash(tiny_run, tmp_path):
    from cifartui import analysis

    root, run = _damaged_root(tiny_run, tmp_path, _evals(_flip_compressed_bytes))
    assert [f.kind for f in analysis.findings(run)]  # the curves' findings, without per-class figures
    shown = cli("show", run.name, "--root", str(root))
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "eval/test_e001.npz" in shown.stdout + shown.stderr
    report = cli("report", run.name, "--root", str(root), "-o", str(tmp_path / "report.md"))
    assert report.returncode == 0, report.stderr
    assert "(eval/test_e001.npz) are missing or damaged" in (tmp_path / "report.md").read_text()


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 blocks no read (simulated with folders above)")
def test_chmod_000_run_is_listed_unreadable(tiny_run, tmp_path):
    from cifartui.record.store import list_runs

    root, run = _damaged_root(tiny_run, tmp_path, lambda run: None)
    os.chmod(run, 0)
    try:
        (row,) = list_runs(root)
        assert row.status == "unreadable"
    finally:
        os.chmod(run, 0o755)


def test_read_run_coerces_a_summary_of_the_wrong_shape(tmp_path):
    from cifartui.record.store import read_run, run_problems

    run = tmp_path / "r"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "completed", "epochs_done": "2", "epochs": None,
                                                  "best_val_acc": "0.5", "world_size": 0, "best_epoch": True}))
    s = read_run(run)
    assert (s.status, s.epochs_done, s.epochs, s.best_val_acc, s.world_size, s.best_epoch) == \
        ("completed", 2, 0, None, 1, None)
    json.dumps(s.to_dict())
    assert any("summary.json" in p for p in run_problems(run))
    (run / "summary.json").write_text("[" * 100000)  # too deep for json: not a crash
    assert read_run(run).status in ("unreadable", "unknown")


def _app(root):
    from cifartui.tui.app import CifarApp

    return CifarApp(root=root, redraw_interval=0.0, progressive=False, follow_interval=60.0, runs_refresh_interval=60.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["eval-truncated", "eval-no-confusion", "samples-truncated", "events-is-a-dir",
                                  "summary-a-list", "classes-a-dict", "config-bomb", "unreadable"])
def test_app_starts_lists_and_opens_a_damaged_run(tiny_run, tmp_path, name):
    from textual.widgets import DataTable

    from cifartui.tui.screens.confusion import ConfusionScreen
    from cifartui.tui.screens.dashboard import DashboardScreen
    from cifartui.tui.screens.drilldown import DrilldownScreen
    from cifartui.tui.screens.runs import RunsScreen
    from cifartui.tui.widgets.run_panels import FindingsPanel

    def unreadable(run):
        _replace_with_dir("summary.json")(run)
        _replace_with_dir("events.jsonl")(run)

    root, run = _damaged_root(tiny_run, tmp_path, unreadable if name == "unreadable" else DAMAGES[name][0])
    shutil.copytree(tiny_run, root / "20000101-000000-healthy")

    def findings_shown(app):  # the findings (a worker reading the damaged run), or why there are none
        panels = app.screen.query(FindingsPanel)  # empty until the screen is composed
        return isinstance(app.screen, DashboardScreen) and panels and str(panels.first().content)

    async def drive():
        app = _app(root)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)
            assert app.screen.query_one(DataTable).row_count == 2
            assert {r.id for r in app.screen.shown} == {run.name, "20000101-000000-healthy"}
            app.open_run(run)
            await pilot_wait_until(pilot, lambda: findings_shown(app), 30,
                                   what="the damaged run's dashboard with its findings")
            await pilot.press("c")
            await pilot_wait_until(pilot, lambda: isinstance(app.screen, ConfusionScreen), 10,
                                   what="the Confusion screen")
            await pilot.press("enter")  # the drilldown of the highlighted pair, where there is one
            await pilot.pause()  # the key's action has run: the drilldown is pushed now, or never
            if isinstance(app.screen, DrilldownScreen):
                await pilot_wait_until(pilot, lambda: app.screen.samples_loaded, 30,
                                       what="the drilldown's thumbnails (or its message that there are none)")
            await pilot.press("escape")
            await pilot.press("r")
            await pilot_wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 10, what="the Runs screen")

    asyncio.run(drive())


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, expected):
    code = (
        "import os, sys\n"
        f"os.umask({umask})\n"
        "from cifartui.record.atomic import atomic_write, atomic_write_text\n"
        "atomic_write_text(sys.argv[1] + '/a.txt', 'x')\n"
        "atomic_write(sys.argv[1] + '/b.bin', lambda f: f.write(b'y'))\n"
        "atomic_write_text(sys.argv[1] + '/a.txt', 'again')\n"  # a replaced file too
        "print(oct(os.umask(0)))\n"  # the umask is left as it was
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == oct(umask)
    for name in ("a.txt", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    assert not list(tmp_path.glob(".*.tmp"))
