"""`cifartui runs`: filters, tags and notes, archive, rm/restore (a live run refused), the 80-column listing.
Real run folders (written by testkit.runs), the real CLI (in process, or a subprocess where the terminal, the
environment or a second process matters)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cifartui.cli import main
from cifartui.record.store import list_runs

from support import REPO, hold_writer_lock, live_pid
from testkit.runs import write_run

NAMES = ["cat", "dog", "emu"]
C100, C10, BROKEN, HALFWAY = ("20250601-101500-cifar100-resnet34", "20250602-093000-cifar10-resnet18",
                              "20250603-080000-broken", "20250604-170000-halfway")


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_run(root, C100, names=NAMES, epochs=5, seed=1, model="resnet34", dataset="cifar100", lr=1e-4, samples=False)
    write_run(root, C10, names=NAMES, epochs=6, seed=2, model="resnet18", dataset="synthetic", lr=2e-3, samples=False)
    write_run(root, BROKEN, names=NAMES, epochs=6, done=1, status="failed", seed=3, model="resnet50",
              dataset="synthetic", samples=False)
    write_run(root, HALFWAY, names=NAMES, epochs=8, done=3, status="stopped", seed=4, model="vit_tiny_patch16_224",
              dataset="synthetic", samples=False)
    return root


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def listed(capsys, root: Path, query: str = "", *extra: str) -> set[str]:
    rc, out, err = run_cli(capsys, "runs", "--root", str(root), "--json", "--filter", query, *extra)
    assert rc == 0, err
    return {r["id"] for r in json.loads(out)}


def cli_process(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cifartui", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, **kw)


def test_each_kind_of_filter_term(capsys, root):
    runs = {r.id: r for r in list_runs(root)}
    lr = {rid: yaml.safe_load((root / rid / "config.yaml").read_text())["train"]["lr"] for rid in runs}
    vals = sorted(r.best_val_acc for r in runs.values())
    cut = (vals[1] + vals[2]) / 2  # between the second and third: two runs on each side
    expected = {
        "status:completed": {i for i, r in runs.items() if r.status == "completed"},
        "model:resnet*": {i for i, r in runs.items() if r.model.startswith("resnet")},
        "data:cifar100": {i for i, r in runs.items() if r.dataset == "cifar100"},
        f"best_val>{cut}": {i for i, r in runs.items() if r.best_val_acc > cut},
        f"best_val<={100 * cut}%": {i for i, r in runs.items() if r.best_val_acc <= cut},
        "test>=0.1": {i for i, r in runs.items() if r.test_acc is not None and r.test_acc >= 0.1},
        "epochs<3": {i for i, r in runs.items() if r.epochs_done < 3},
        "epochs!=3": {i for i, r in runs.items() if r.epochs_done != 3},
        "cfg.train.lr=0.002": {i for i in runs if lr[i] == 0.002},
        "cfg.train.lr<1e-3": {i for i in runs if lr[i] < 1e-3},
        "cfg.model.name=resnet1*": {i for i, r in runs.items() if r.model.startswith("resnet1")},
        "cifar1": {C10, C100},  # a bare word: part of the id or the name
        "halfway": {HALFWAY},
        "-status:completed model:resnet*": {i for i, r in runs.items() if r.status != "completed" and r.model.startswith("resnet")},
    }
    for query, want in expected.items():
        assert want and want != set(runs), f"{query}: the fixture must split the runs to test anything"
        assert listed(capsys, root, query) == want, query
    run_cli(capsys, "runs", "--root", str(root), "tag", C10, "baseline")
    assert listed(capsys, root, "tag:baseline") == {C10}
    assert listed(capsys, root, "tag:baseline status:completed cfg.train.lr>0.001") == {C10}  # all must hold
    assert listed(capsys, root, "tag:baseline data:cifar100") == set()


def test_a_bad_term_exits_2_naming_it_and_why(capsys, root):
    bad = {
        "best_val>abc": "needs a number",
        "best_val>80": "best_val>0.8 or best_val>80%",
        "foo:bar": "no field 'foo'",
        "status:complete": "no status 'complete'",
        "cfg.train.lrr=1": "did you mean cfg.train.lr?",
        "cfg.train.lr>fast": "needs a number",
        "lr=3": "'lr' cannot be compared",
        "tag:": "needs a value",
        "cfg.train.lr": "needs an operator and a value",
        'cfg.name="a b': "No closing quotation",
    }
    for term, why in bad.items():
        rc, out, err = run_cli(capsys, "runs", "--root", str(root), "--filter", f"model:resnet* {term}")
        assert rc == 2 and why in err and out == "", (term, err)
        assert "Traceback" not in err
    done = cli_process("runs", "--root", str(root), "--filter", "best_val>>0.8")  # end to end: the exit status
    assert done.returncode == 2 and "bad term 'best_val>>0.8'" in done.stderr and done.stdout == ""


def test_tags_and_notes_round_trip_through_runs_and_show_json(capsys, root):
    events = (root / C10 / "events.jsonl").read_bytes()
    assert run_cli(capsys, "runs", "--root", str(root), "tag", C10, "baseline", "lr-sweep", "baseline")[0] == 0
    assert run_cli(capsys, "runs", "note", "--root", str(root), C10, "first try\nwith warmup")[0] == 0
    assert run_cli(capsys, "runs", "--root", str(root), "tag", C10, "lr-sweep", "--remove")[0] == 0
    assert run_cli(capsys, "runs", "--root", str(root), "tag", C10, "ablation/lr")[0] == 0
    rc, out, _ = run_cli(capsys, "runs", "--root", str(root), "--json")
    row = next(r for r in json.loads(out) if r["id"] == C10)
    assert row["tags"] == ["baseline", "ablation/lr"] and row["note"] == "first try\nwith warmup"
    rc, out, _ = run_cli(capsys, "show", C10, "--root", str(root), "--json")
    shown = json.loads(out)
    assert shown["tags"] == ["baseline", "ablation/lr"] and shown["note"] == "first try\nwith warmup"
    rc, out, _ = run_cli(capsys, "show", C10, "--root", str(root))
    assert "tags: baseline, ablation/lr" in out and "note: first try" in out
    assert (root / C10 / "events.jsonl").read_bytes() == events  # the trainer's file is never touched
    meta = json.loads((root / C10 / "meta.json").read_text())
    assert meta["tags"] == ["baseline", "ablation/lr"]
    others = json.loads(run_cli(capsys, "runs", "--root", str(root), "--json")[1])
    assert all(r["tags"] == [] and r["note"] == "" for r in others if r["id"] != C10)
    rc, _, err = run_cli(capsys, "runs", "--root", str(root), "tag", C10, "no spaces!")
    assert rc == 2 and "tag: 'no spaces!' is not a valid tag" in err
    assert run_cli(capsys, "runs", "note", "--root", str(root), C10, "")[0] == 0
    assert json.loads(run_cli(capsys, "show", C10, "--root", str(root), "--json")[1])["note"] == ""


def test_a_damaged_meta_file_is_named_and_never_overwritten(capsys, root):
    (root / C10 / "meta.json").write_text("{not json")
    assert C10 in listed(capsys, root)  # listed, without tags
    rc, _, err = run_cli(capsys, "runs", "--root", str(root), "tag", C10, "x")
    assert rc == 2 and "meta.json: not valid JSON" in err and "Fix or delete" in err
    assert (root / C10 / "meta.json").read_text() == "{not json"
    shown = json.loads(run_cli(capsys, "show", C10, "--root", str(root), "--json")[1])
    assert any(p.startswith("meta.json: not valid JSON") for p in shown["problems"])


def test_archive_hides_a_run_until_all_or_undo(capsys, root):
    rc, out, _ = run_cli(capsys, "runs", "--root", str(root), "archive", BROKEN, HALFWAY)
    assert rc == 0 and f"archived {BROKEN}" in out
    assert listed(capsys, root) == {C10, C100}
    assert listed(capsys, root, "", "--all") == {C10, C100, BROKEN, HALFWAY}
    assert listed(capsys, root, "status:failed", "--all") == {BROKEN}
    rc, out, _ = run_cli(capsys, "runs", "--root", str(root))
    assert "2 archived hidden (--all shows them)" in out and BROKEN not in out
    run_cli(capsys, "runs", "--root", str(root), "archive", "--undo", HALFWAY)
    assert listed(capsys, root) == {C10, C100, HALFWAY}


def test_rm_moves_to_the_trash_and_restore_brings_it_back(capsys, root):
    files = sorted(p.relative_to(root / C10) for p in (root / C10).rglob("*"))
    rc, out, _ = run_cli(capsys, "runs", "--root", str(root), "rm", C10, BROKEN, "--yes")
    assert rc == 0 and "rm -rf" in out
    assert listed(capsys, root, "", "--all") == {C100, HALFWAY}
    assert listed(capsys, root, "", "--trash") == {C10, BROKEN}
    rc, _, err = run_cli(capsys, "show", C10, "--root", str(root))
    assert rc == 2 and "not found" in err
    rc, out, _ = run_cli(capsys, "runs", "--root", str(root), "restore", "20250602")  # an id prefix
    assert rc == 0 and listed(capsys, root) == {C100, HALFWAY, C10}
    assert sorted(p.relative_to(root / C10) for p in (root / C10).rglob("*") if p.name != "writer.lock") == files
    rc, _, err = run_cli(capsys, "runs", "--root", str(root), "restore", C10)
    assert rc == 2 and "is not in the trash" in err


def test_rm_without_yes_asks_on_a_terminal_and_refuses_without_one(root):
    done = cli_process("runs", "--root", str(root), "rm", C10, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Pass --yes" in done.stderr and (root / C10).is_dir()
    for answer, rc, moved in (("n", 1, False), ("y", 0, True)):
        leader, follower = pty.openpty()
        child = subprocess.Popen([sys.executable, "-m", "cifartui", "runs", "--root", str(root), "rm", C100],
                                 cwd=REPO, stdin=follower, stdout=follower, stderr=follower)
        os.close(follower)
        seen = b""
        while b"[y/N]" not in seen:  # a child that never asks fails here, not at pytest's timeout
            assert select.select([leader], [], [], 60)[0], f"no [y/N] prompt in 60 s; it said {seen!r}"
            seen += os.read(leader, 4096)
        os.write(leader, answer.encode() + b"\n")
        assert child.wait(timeout=60) == rc
        os.close(leader)
        assert (root / ".trash" / C100).is_dir() == moved and (root / C100).is_dir() != moved


def test_rm_refuses_a_live_run_and_moves_nothing(capsys, root):
    with hold_writer_lock(root / C10) as holder:
        done = cli_process("runs", "--root", str(root), "rm", C100, C10, "--yes")
        assert done.returncode == 2, done.stderr
        assert f"{C10} is live" in done.stderr and f"pid {holder.pid}" in done.stderr and "stop.request" in done.stderr
        assert (root / C10).is_dir() and (root / C100).is_dir() and not (root / ".trash").exists()  # nothing moved
    # a run whose writer lives (its pid, this host) but holds no lock, as an older version wrote: refused too
    with live_pid() as pid:
        live = write_run(root, "20250605-120000-live", names=NAMES, epochs=4, done=1, status="running", pid=pid,
                         samples=False)
        rc, _, err = run_cli(capsys, "runs", "--root", str(root), "rm", live.name, "--yes")
        assert rc == 2 and "is live" in err and f"pid {pid}" in err and live.is_dir()
    assert run_cli(capsys, "runs", "--root", str(root), "rm", live.name, "--yes")[0] == 0  # its writer is gone


def test_80_columns_never_cut_the_run_id(capsys, root):
    long_id = "20261201-224712-cifar100-resnet34-warmup5-lr3e-4-bs128"
    write_run(root, long_id, names=NAMES, epochs=2, model="vit_small_patch16_224.augreg_in21k_ft_in1k",
              dataset="imagefolder", samples=False)
    run_cli(capsys, "runs", "--root", str(root), "tag", long_id, "baseline", "a-rather-long-tag")
    run_cli(capsys, "runs", "note", "--root", str(root), long_id, "a note long enough to need more room " * 3)
    for width in (80, 60, 40):
        done = cli_process("runs", "--root", str(root), env={**os.environ, "COLUMNS": str(width)})
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        table = lines[1:1 + 1 + len(list_runs(root))]
        for rid in (long_id, C100, C10, BROKEN, HALFWAY):
            assert any(line.split()[0] == rid for line in table), (width, rid, done.stdout)
        if len(long_id) + 12 <= width:  # room for the id and status: nothing wider than the terminal
            assert all(len(line) <= width for line in table), (width, done.stdout)
            assert "hidden to fit" in done.stdout
    wide = cli_process("runs", "--root", str(root), env={**os.environ, "COLUMNS": "250"})
    assert "a-rather-long-tag" in wide.stdout and "vit_small_patch16_224.augreg_in21k_ft_in1k" in wide.stdout
    assert "hidden to fit" not in wide.stdout


def test_cfg_terms_use_a_cache_that_follows_changed_configs(capsys, root):
    assert listed(capsys, root, "cfg.train.lr=0.002") == {C10}
    cache = root / ".cache" / "configs.json"
    assert cache.is_file()
    config = root / C100 / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.0001", "lr: 0.002"))  # changed since it was cached
    assert listed(capsys, root, "cfg.train.lr=0.002") == {C10, C100}
    cache.write_text("{damaged")  # only a cache: ignored, then rebuilt
    assert listed(capsys, root, "cfg.train.lr=0.002") == {C10, C100}
    assert json.loads(cache.read_text())["version"]
    assert ".cache" not in {r.id for r in list_runs(root)}


def test_the_config_cache_keeps_archived_runs_and_drops_removed_ones(capsys, root):
    """A query sees only the visible runs: the cache must not forget the archived ones (they would be re-read
    on every --all query), only the runs whose folder is gone."""
    def cached() -> set[str]:
        return set(json.loads((root / ".cache" / "configs.json").read_text())["runs"])

    assert listed(capsys, root, "cfg.train.lr=0.002", "--all") == {C10}
    assert cached() == {C100, C10, BROKEN, HALFWAY}
    assert run_cli(capsys, "runs", "--root", str(root), "archive", C100)[0] == 0
    shutil.rmtree(root / BROKEN)
    (root / C10 / "config.yaml").write_text((root / C10 / "config.yaml").read_text() + "\n")  # the cache changes
    assert listed(capsys, root, "cfg.train.lr=0.002") == {C10}
    assert cached() == {C100, C10, HALFWAY}


def test_a_cached_listing_sees_every_change(root):
    """list_runs(cache=) (the Runs screen's reload): unchanged runs are not read again, changed ones are."""
    from cifartui.record.atomic import atomic_write_text
    from cifartui.record.meta import add_tags

    cache: dict = {}
    first = {r.id: r for r in list_runs(root, cache)}
    again = {r.id: r for r in list_runs(root, cache)}
    assert all(again[i] is first[i] for i in first)  # not read again: the very same objects
    add_tags(root / C10, ["baseline"])  # meta.json
    summary = json.loads((root / C100 / "summary.json").read_text())
    atomic_write_text(root / C100 / "summary.json", json.dumps({**summary, "test_acc": 0.5}))  # same size or not
    (root / BROKEN / "summary.json").chmod(0)  # a chmod changes no content (as root it stays readable)
    shutil.rmtree(root / HALFWAY)
    write_run(root, "20250606-090000-new", names=NAMES, epochs=2, samples=False)
    now = {r.id: r for r in list_runs(root, cache)}
    assert now[C10].tags == ["baseline"] and now[C100].test_acc == 0.5
    assert now[BROKEN] is not first[BROKEN]  # its ctime changed: read again
    assert HALFWAY not in now and "20250606-090000-new" in now
    with live_pid() as pid:
        live = write_run(root, "20250607-090000-live", names=NAMES, epochs=4, done=1, status="running", pid=pid,
                         samples=False)
        assert {r.id: r for r in list_runs(root, cache)}[live.name].status == "running"
    assert {r.id: r for r in list_runs(root, cache)}[live.name].status == "crashed"  # no file changed: read anyway
