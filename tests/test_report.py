"""The Markdown report and the CSV export of a fixture run with a known confusion matrix."""

import csv
import io
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from cifartui.cli import main
from cifartui.commands.export import COLUMNS, export_csv
from cifartui.record.events import EpochEnd
from cifartui.report import build_report, curves_svg
from testkit.runs import REFERENCE_CONFUSION, RunWriter, per_sample, write_reference_run


@pytest.fixture
def ref_run(tmp_path):
    return write_reference_run(tmp_path / "runs")


def section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 3)
    return md[start:end if end > 0 else None]


def test_report_tables_equal_hand_figures(ref_run, tmp_path):
    out = build_report(ref_run, tmp_path / "out" / "ref.md")
    md = out.read_text()
    assert md.startswith(f"# Run report: {ref_run.name}")

    pairs = section(md, "Most confused pairs (test)")
    rows = [line for line in pairs.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 9  # every non-zero off-diagonal cell (fewer than 15)
    assert rows[0] == "| 1 | boy | girl | 6 | 30.0% of 20 | 4 |"
    assert rows[1] == "| 2 | maple_tree | oak_tree | 5 | 25.0% of 20 | 2 |"
    assert rows[2] == "| 3 | girl | boy | 4 | 20.0% of 20 | 6 |"
    assert rows[3] == "| 4 | oak_tree | maple_tree | 2 | 10.0% of 20 | 5 |"

    classes = section(md, "Best and worst classes (test)")
    # 6 classes: the 3 best and the 3 worst (never the same class on both sides); precision of orange: 20 / 22
    assert "| 1 | orange | 100.0% | 20/20 | 90.9% | boy | 60.0% | 12/20 | 75.0% |" in classes
    assert "| 2 | motorcycle | 100.0% | 20/20 | 87.0% | maple_tree | 70.0% | 14/20 | 87.5% |" in classes
    assert "| 3 | oak_tree | 85.0% | 17/20 | 77.3% | girl | 75.0% | 15/20 | 71.4% |" in classes

    sup = section(md, "CIFAR-100 superclasses (test)")
    assert "| people | boy, girl | 40 | 67.5% | 92.5% |" in sup
    assert "| trees | maple_tree, oak_tree | 40 | 77.5% | 95.0% |" in sup
    assert "| fruit_and_vegetables | orange | 20 | 100.0% | 100.0% |" in sup
    assert "Errors within a superclass: **17** of 22 (77.3%); across superclasses: **5** (22.7%)." in sup
    # across: people->vehicles_1 (boy 1, girl 1) = 2, then people->fruit 1, trees->fruit 1, trees->vehicles_1 1
    assert "| people | vehicles_1 | 2 |" in sup

    gap = section(md, "Generalisation gap")
    assert "| validation (epoch 5) | 78.00% | 21.00 |" in gap
    assert "| test (weights of epoch 3) | 81.67% | 17.33 |" in gap

    res = section(md, "Results")
    assert "| best (validation) | 3 | 90.00% | 80.00% |" in res and "| last | 5 | 99.00% | 78.00% |" in res

    findings = section(md, "Findings")
    assert "⚠ **Overfitting**" in findings and "21.0 points" in findings and "Early stopping" in findings
    assert "✓ **Near-perfect classes**" in findings

    cfg = section(md, "Config")
    assert "| `train.lr` | 0.001 |" in cfg and "| `train.early_stop_patience` | 2 |" in cfg

    curves = section(md, "Learning curves")
    assert "![learning curves](ref_curves.svg)" in curves and "| 3 * |" in curves
    svg = ET.parse(out.parent / "ref_curves.svg").getroot()
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 6  # train/val acc, val top-5, train/val loss, lr
    assert all(len(pl.get("points").split()) == 5 for pl in lines)


def test_image_strip_shows_the_most_confused_pair(ref_run, tmp_path):
    out = build_report(ref_run, tmp_path / "ref.md")
    md = out.read_text()
    assert "## Confused images: boy vs girl (test)" in md and "![boy vs girl](ref_confused.png)" in md
    strip = Image.open(tmp_path / "ref_confused.png").convert("L")
    arr = np.asarray(strip)
    # thumbnails are filled with their sample index as grey level: boy->girl are samples 12..17 (6),
    # girl->boy samples 20..23 (4); most confident (highest index) first
    s = per_sample(REFERENCE_CONFUSION)
    boy_girl = np.flatnonzero((s["targets"] == 0) & (s["preds"] == 1))[::-1]
    girl_boy = np.flatnonzero((s["targets"] == 1) & (s["preds"] == 0))[::-1]
    assert list(boy_girl) == [17, 16, 15, 14, 13, 12] and list(girl_boy) == [23, 22, 21, 20]
    scale, pad, title_h, cap_h, cw = 12, 6, 18, 14, 96  # 8 px thumbnails drawn at 96 px
    for row, idx in enumerate((boy_girl, girl_boy)):
        y = pad + row * (title_h + 8 * scale + cap_h + pad) + title_h + 40
        for k, i in enumerate(idx):
            assert arr[y, pad + k * (cw + pad) + 40] == i
        assert arr[y, pad + len(idx) * (cw + pad) + 40] == 255  # nothing after the last one
    assert strip.size[1] == pad + 2 * (title_h + 8 * scale + cap_h + pad)


def test_report_of_a_run_without_epochs_or_evaluations(tmp_path):
    with RunWriter.create(tmp_path, "fresh") as writer:
        writer.start(["a", "b"], name="fresh", epochs=3, steps_per_epoch=1, train_size=2, val_size=1, test_size=1,
                     pid=os.getpid())
    md = build_report(writer.path).read_text()
    assert "still running" in md and "No epoch finished." in md and "No evaluation recorded yet." in md
    assert (writer.path / "report.md").exists() and not (writer.path / "report_curves.svg").exists()


def test_report_command_writes_beside_the_run(ref_run, capsys):
    assert main(["report", ref_run.name, "--root", str(ref_run.parent)]) == 0
    assert f"wrote {ref_run / 'report.md'}" in capsys.readouterr().out
    assert (ref_run / "report_curves.svg").exists() and (ref_run / "report_confused.png").exists()
    assert main(["report", "nope", "--root", str(ref_run.parent)]) == 2
    assert "not found" in capsys.readouterr().err


def test_curves_svg_single_epoch_and_zero_lr():
    svg = curves_svg([EpochEnd(epoch=1, train_acc=0.5, val_acc=0.4, val_top5=0.9, train_loss=1.0, val_loss=1.1, lr=0.0,
                               epoch_seconds=1.0, images_per_second=10.0)], 1)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and "nan" not in svg.lower()


def test_export_csv_in_timm_columns(ref_run, tmp_path, capsys):
    text = export_csv(ref_run)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS and COLUMNS[:6] == ("epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "lr")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    last = rows[-1]
    assert float(last["eval_top1"]) == pytest.approx(78.0) and float(last["train_top1"]) == pytest.approx(99.0)
    assert float(last["eval_loss"]) == 0.95 and float(last["train_loss"]) == 0.1 and float(last["eval_top5"]) == 99.0
    assert float(last["lr"]) == pytest.approx(1e-3 * 5 / 10)
    assert [r["is_best"] for r in rows] == ["1", "1", "1", "0", "0"]
    out = tmp_path / "m.csv"
    assert main(["export", str(ref_run), "--csv", "-o", str(out)]) == 0
    assert out.read_text() == text
    assert main(["export", str(ref_run), "--csv"]) == 0
    assert capsys.readouterr().out == text
