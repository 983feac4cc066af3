"""``cifartui report RUN [-o FILE.md]``: a Markdown report of a run, with its figures beside it.

Written next to the report (``FILE.md``): ``FILE_curves.svg`` (the learning curves, SVG written by hand: no
plotting dependency, and Markdown viewers show it) and ``FILE_confused.png`` (thumbnails of the most
confused pair's images, drawn with Pillow). The default FILE is ``<run>/report.md``.

Everything comes from the run folder (events, evaluation arrays, thumbnails, config): numpy + Pillow,
never torch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from cifartui import analysis
from cifartui.analysis import RunData, load_run, pct
from cifartui.record import metrics
from cifartui.record.events import EpochEnd, Evaluation
from cifartui.record.store import StoreError, load_evaluation, load_samples

TOP_PAIRS = 15
TOP_CLASSES = 10
STRIP_PER_ROW = 10


# -- learning curves (SVG) ---------------------------------------------------------------------------
_COLOURS = {"train": "#1f77b4", "val": "#d62728", "top5": "#ff7f0e", "lr": "#2ca02c"}


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _fmt_tick(v: float, log: bool = False) -> str:
    if log:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:g}"


def _panel(x0: float, y0: float, w: float, h: float, title: str, xs: list[int], series: list[tuple[str, list[float], str, bool]],
           ylim: tuple[float, float] | None, best_epoch: int | None, log: bool = False, percent: bool = False) -> list[str]:
    """One chart: axes, ticks, a polyline (and dots) per series, the best epoch as a dashed line, a legend."""
    out = [f'<text x="{x0 + w / 2:.1f}" y="{y0 - 8:.1f}" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    values = [v for _n, ys, _c, _d in series for v in ys if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not values or not xs:
        return out + [f'<text x="{x0 + w / 2:.1f}" y="{y0 + h / 2:.1f}" text-anchor="middle">no data</text>']
    f = (lambda v: math.log10(v)) if log else (lambda v: v)  # noqa: E731
    lo, hi = ylim if ylim else (min(map(f, values)), max(map(f, values)))
    if hi - lo < 1e-12:
        lo, hi = (lo - 1, hi + 1) if log else (lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1))
    ticks = [float(math.floor(lo)) + i for i in range(int(math.ceil(hi) - math.floor(lo)) + 1)] if log else _nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    xmin, xmax = min(xs), max(xs)
    xspan = max(1, xmax - xmin)
    px = lambda e: x0 + (w * (e - xmin) / xspan if xmax > xmin else w / 2)  # noqa: E731
    py = lambda v: y0 + h - h * (f(v) - lo) / (hi - lo)  # noqa: E731
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="white" stroke="#888"/>')
    for t in ticks:
        y = y0 + h - h * (t - lo) / (hi - lo)
        label = _fmt_tick(10 ** t, True) if log else (f"{100 * t:g}%" if percent else _fmt_tick(t))
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{label}</text>')
    step = max(1, math.ceil(len(xs) / 10))
    for e in xs[::step]:
        out.append(f'<text x="{px(e):.1f}" y="{y0 + h + 14:.1f}" text-anchor="middle" font-size="10">{e}</text>')
    out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + h + 28:.1f}" text-anchor="middle" font-size="10">epoch</text>')
    if best_epoch is not None and xmin <= best_epoch <= xmax:
        bx = px(best_epoch)
        out.append(f'<line x1="{bx:.1f}" y1="{y0}" x2="{bx:.1f}" y2="{y0 + h}" stroke="#999" stroke-dasharray="4 3"/>')
    for i, (name, ys, colour, dashed) in enumerate(series):
        pts = [(px(e), py(v)) for e, v in zip(xs, ys) if v is not None and math.isfinite(v) and (v > 0 or not log)]
        if not pts:
            continue
        dash = ' stroke-dasharray="6 3"' if dashed else ""
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>' for a, b in pts]
        lx, ly = x0 + (w / len(series)) * i, y0 + h + 46  # legend in a row under the axis
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 18:.1f}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 22:.1f}" y="{ly}" font-size="10">{escape(name)}</text>')
    return out


def curves_svg(epochs: list[EpochEnd], best_epoch: int | None = None, title: str = "") -> str:
    """Accuracy, loss and learning-rate curves per epoch (one ``EpochEnd`` each) as one SVG document."""
    xs = [e.epoch for e in epochs]
    col = lambda k: [float(getattr(e, k)) if getattr(e, k) is not None else None for e in epochs]  # noqa: E731
    pw, ph, top, left, gap = 260, 200, 48, 48, 60
    width = left + 3 * pw + 2 * gap + 20
    height = top + ph + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        parts.append(f'<text x="{left}" y="16" font-size="12" fill="#555">{escape(title)}</text>')
    acc = [("train acc", col("train_acc"), _COLOURS["train"], False), ("val acc", col("val_acc"), _COLOURS["val"], False),
           ("val top-5", col("val_top5"), _COLOURS["top5"], True)]
    loss = [("train loss", col("train_loss"), _COLOURS["train"], False), ("val loss", col("val_loss"), _COLOURS["val"], False)]
    lr = [("lr (end of epoch)", col("lr"), _COLOURS["lr"], False)]
    parts += _panel(left, top, pw, ph, "accuracy", xs, acc, (0.0, 1.0), best_epoch, percent=True)
    parts += _panel(left + pw + gap, top, pw, ph, "loss", xs, loss, None, best_epoch)
    lrs = [v for v in col("lr") if v is not None]
    parts += _panel(left + 2 * (pw + gap), top, pw, ph, "learning rate", xs, lr, (0.0, max(lrs) if lrs and max(lrs) > 0 else 1.0),
                    best_epoch)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- confused samples (PNG) --------------------------------------------------------------------------
def confused_strip(images: np.ndarray, targets: np.ndarray, preds: np.ndarray, pred_prob: np.ndarray | None,
                   rows: list[tuple[int, int, str]], per_row: int = STRIP_PER_ROW):
    """A PIL image: for each (true, pred, label) row, up to ``per_row`` thumbnails of samples of class ``true``
    predicted as ``pred``, most confident mistakes first, each captioned with its probability and index.
    Returns (image, [number shown per row]) or (None, []) when no row has samples."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = images.shape[1:3]
    scale = max(1, 96 // max(h, w))
    tw, th = w * scale, h * scale
    cw = max(tw, 84)  # column width: room for the caption
    pad, title_h, cap_h = 6, 18, 14
    picked = []
    for true, pred, label in rows:
        idx = np.flatnonzero((targets == true) & (preds == pred))
        if pred_prob is not None and idx.size:
            idx = idx[np.argsort(-pred_prob[idx].astype(np.float32), kind="stable")]
        picked.append((label, idx[:per_row], idx.size))
    picked = [p for p in picked if p[1].size]
    if not picked:
        return None, []
    width = pad + per_row * (cw + pad)
    height = sum(title_h + th + cap_h + pad for _ in picked) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    y = pad
    for label, idx, total in picked:
        draw.text((pad, y + 2), f"{label}  ({len(idx)} of {total} shown)", fill="black", font=font)
        y += title_h
        for k, i in enumerate(idx):
            x = pad + k * (cw + pad)
            thumb = Image.fromarray(np.ascontiguousarray(images[i])).resize((tw, th), Image.NEAREST)
            canvas.paste(thumb, (x, y))
            cap = f"#{int(i)}" + (f" p={float(pred_prob[i]):.2f}" if pred_prob is not None else "")
            draw.text((x, y + th + 1), cap, fill="#333", font=font)
        y += th + cap_h + pad
    return canvas, [len(idx) for _l, idx, _t in picked]


# -- Markdown helpers ---------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    text = "" if v is None else str(v)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` holds one of l/r per column (default: left)."""
    marks = [("---:" if (align[i:i + 1] == "r") else "---") for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        out = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix}{k}.")
        return out
    return [(prefix[:-1], d)]


def _num(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts))) if isinstance(ts, (int, float)) else "-"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


# -- the report ---------------------------------------------------------------------------------------
def build_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, split: str | None = None,
                 against: str | os.PathLike | None = None, problems: list[str] | None = None) -> Path:
    """Write the report (and its images beside it); returns the Markdown file's path. ``against``: a baseline run,
    compared in a "What changed" section (DiffError, before anything is written, when it scored other images).
    ``problems``: the run's damaged files when the caller has already checked them (run_problems reads every array)."""
    changed = None
    if against is not None:
        from cifartui.diff import diff_runs

        changed = diff_runs(against, run_dir, split or "test")
    data = load_run(run_dir, check_files=problems is None)
    if problems is not None:
        data.problems = problems
    record = data.record
    md_path = Path(out) if out else data.path / "report.md"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    stem = md_path.stem
    s = data.summary
    st = record.started
    lines: list[str] = [f"# Run report: {s.id}", ""]
    planned = st.epochs if st is not None else (data.cfg("train.epochs") or s.epochs)
    head = [f"**{s.model or data.cfg('model.name') or '?'}** on **{s.dataset or data.cfg('data.source') or '?'}**",
            f"status **{s.status}**" + (f" ({s.reason})" if s.reason else ""),
            f"{len(record.epochs)}/{planned} epochs"]
    if st is not None:
        head.append(f"{st.num_classes} classes, {st.train_size}/{st.val_size}/{st.test_size} train/val/test images")
        device = f"device {st.device}"
        if st.device_name:
            device += f" ({st.device_name})"
        if (st.world_size or 1) > 1:
            device += f", {st.world_size} processes"
        head.append(device)
    lines.append(" · ".join(head))
    lines.append("")
    started_at = record.first_started.time if record.first_started is not None else None  # a resume keeps the start
    ended_at = record.ended.time if record.ended is not None else None
    span = f"started {_when(started_at)}"
    if ended_at and started_at:
        span += f", ended {_when(ended_at)} ({_duration(ended_at - started_at)})"
    lines += [f"{span}. Folder `{data.path}`. Written by `cifartui report` on {_when(time.time())}.", ""]
    from cifartui.environment import describe  # what made the run: versions, host, command line, git

    env_lines = describe(record.environment)
    if env_lines:
        lines += ["Environment: " + "  \n".join(f"`{_cell(x).replace('`', '')}`" for x in env_lines), ""]
    if data.problems:
        lines += ["## Damaged files", "", "This report shows what could be read; these files could not:", ""]
        lines += [f"- `{_cell(p)}`" for p in data.problems] + [""]

    evaluation = record.evaluation(split)
    found = analysis.findings_of(data, split)
    lines += ["## Findings", ""]
    if found:
        for f in found:
            mark = {"warning": "⚠ ", "good": "✓ "}.get(f.severity, "")
            title = analysis.TITLES.get(f.kind, f.kind)
            text = f"**{title}**{f.text[len(title):]}" if f.text.startswith(title) else f"**{title}**: {f.text}"
            lines.append(f"- {mark}{text}")
    else:
        lines.append("Nothing to report yet (no epoch finished).")
    lines.append("")

    # config
    lines += ["## Config", ""]
    if data.config:
        lines += [table(["key", "value"], [[f"`{k}`", "-" if v is None else v] for k, v in _flatten(data.config)]), ""]
    else:
        lines += ["No config.yaml in the run folder.", ""]

    # results
    lines += _results(data, evaluation)
    lines += _curves(data, md_path, stem)
    lines += _gap(data)
    if evaluation is not None:
        arrays = _arrays(data, evaluation)
        if arrays is not None and "confusion" in arrays:
            conf = np.asarray(arrays["confusion"])
            lines += _classes(data, conf, evaluation)
            lines += _pairs(data, conf, evaluation)
            lines += _superclasses(data, conf, evaluation)
            lines += _strip(data, conf, arrays, evaluation, md_path, stem)
        else:
            lines += ["## Per-class results", "", f"The arrays of the {evaluation.split} evaluation "
                      f"({evaluation.file}) are missing or damaged.", ""]
    else:
        lines += ["## Per-class results", "", "No evaluation recorded yet.", ""]
    if changed is not None:
        lines += what_changed(changed)
    md_path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return md_path


def _arrays(data: RunData, evaluation: Evaluation) -> dict[str, np.ndarray] | None:
    if not evaluation.file:
        return None
    try:
        return load_evaluation(data.path, evaluation.file)
    except (OSError, ValueError, KeyError, StoreError):  # missing or damaged (run_problems names it)
        return None


def _results(data: RunData, evaluation: Evaluation | None) -> list[str]:
    out = ["## Results", ""]
    record = data.record
    best = record.best
    if best is not None:
        rows = []
        for label, e in (("best (validation)", best), ("last", record.epochs[-1])):
            rows.append([label, e.epoch, pct(e.train_acc, 2), pct(e.val_acc, 2), pct(e.val_top5, 2),
                         _num(e.train_loss), _num(e.val_loss)])
        out += [table(["", "epoch", "train acc", "val acc", "val top-5", "train loss", "val loss"], rows, "lrrrrrr"), ""]
    else:
        out += ["No epoch finished.", ""]
    if record.evaluations:
        rows = []
        for e in record.evaluations:
            if e.split != "val":
                rows.append([e.split, e.epoch, pct(e.top1, 2), pct(e.top5, 2), _num(e.loss), e.num_samples, _when(e.time)])
        if rows:
            out += ["Evaluations (test: the best validation epoch's weights; `eval-*`: added by `cifartui eval`):", "",
                    table(["split", "weights of epoch", "top-1", "top-5", "loss", "images", "when"], rows, "lrrrrrl"), ""]
    if evaluation is not None:
        out += [f"Per-class figures below are from the **{evaluation.split}** evaluation "
                f"({evaluation.num_samples} images, weights of epoch {evaluation.epoch}).", ""]
    return out


def _curves(data: RunData, md_path: Path, stem: str) -> list[str]:
    out = ["## Learning curves", ""]
    epochs, best = data.record.epochs, data.record.best
    if best is None:
        return out + ["No epoch finished.", ""]
    svg_name = f"{stem}_curves.svg"
    (md_path.parent / svg_name).write_text(curves_svg(epochs, best.epoch, data.summary.id), encoding="utf-8")
    out += [f"![learning curves]({svg_name})", "",
            "Dashed vertical line: the best validation epoch. Train accuracy and loss are running means over each "
            "epoch's augmented batches; validation figures are measured after the epoch.", ""]
    rows = []
    for e in epochs:
        rows.append([f"{e.epoch}{' *' if e.epoch == best.epoch else ''}", _num(e.train_loss),
                     pct(e.train_acc, 2), _num(e.val_loss), pct(e.val_acc, 2), pct(e.val_top5, 2),
                     f"{float(e.lr):.3g}", f"{float(e.epoch_seconds or 0):.1f}",
                     f"{float(e.images_per_second or 0):.0f}"])
    out += [table(["epoch", "train loss", "train acc", "val loss", "val acc", "val top-5", "lr", "seconds", "img/s"],
                  rows, "rrrrrrrrr"), "", "`*` best validation accuracy.", ""]
    return out


def _gap(data: RunData) -> list[str]:
    out = ["## Generalisation gap", ""]
    best = data.record.best
    if best is None:
        return out + ["No epoch finished.", ""]
    last = data.record.epochs[-1]
    if last.train_acc is None:
        return out + ["No train accuracy: Mixup/CutMix mixed the training targets, so none was measured.", ""]
    train = float(last.train_acc)
    rows = [[f"train (epoch {last.epoch}, running mean, augmented)", pct(train, 2), ""],
            [f"validation (epoch {last.epoch})", pct(last.val_acc, 2), f"{100 * (train - float(last.val_acc)):.2f}"],
            [f"validation (best, epoch {best.epoch})", pct(best.val_acc, 2), f"{100 * (train - float(best.val_acc)):.2f}"]]
    test = data.record.test
    if test is not None:
        rows.append([f"test (weights of epoch {test.epoch})", pct(test.top1, 2), f"{100 * (train - float(test.top1)):.2f}"])
    out += [table(["", "accuracy", "points below train"], rows, "lrr"), "",
            f"A gap of {100 * analysis.OVERFIT_GAP:.0f} points or more between train and validation at the last epoch "
            "is reported as overfitting.", ""]
    return out


def _classes(data: RunData, conf: np.ndarray, evaluation: Evaluation) -> list[str]:
    ranked = metrics.ranked_classes(conf)
    support, diag = conf.sum(1), np.diag(conf)
    prec = metrics.precision(conf)
    k = min(TOP_CLASSES, max(1, len(ranked) // 2))  # best and worst never overlap
    best, worst = ranked[:k], ranked[::-1][:k]
    rows = []
    for r in range(k):
        (bi, ba), (wi, wa) = best[r], worst[r]
        rows.append([r + 1, data.name(bi), pct(ba), f"{diag[bi]}/{support[bi]}", pct(prec[bi]),
                     data.name(wi), pct(wa), f"{diag[wi]}/{support[wi]}", pct(prec[wi])])
    return [f"## Best and worst classes ({evaluation.split})", "",
            table(["#", "best", "accuracy", "correct", "precision", "worst", "accuracy", "correct", "precision"],
                  rows, "rlrrrlrrr"), "",
            "Accuracy: share of the class's images predicted right (recall). Precision: share of the predictions of "
            "the class that were right.", ""]


def _pairs(data: RunData, conf: np.ndarray, evaluation: Evaluation) -> list[str]:
    pairs = metrics.most_confused(conf, TOP_PAIRS)
    out = [f"## Most confused pairs ({evaluation.split})", ""]
    if not pairs:
        return out + ["No errors.", ""]
    support = conf.sum(1)
    rows = [[n + 1, data.name(p.true), data.name(p.pred), p.count, f"{pct(p.share)} of {support[p.true]}", p.reverse]
            for n, p in enumerate(pairs)]
    return out + [table(["#", "true", "predicted as", "count", "share of true class", "reverse count"], rows, "rllrrr"), "",
                  "Reverse count: images of the predicted class taken for the true one.", ""]


def _superclasses(data: RunData, conf: np.ndarray, evaluation: Evaluation) -> list[str]:
    groups = analysis.superclass_groups(data.class_names)
    if groups is None or conf.shape[0] != len(data.class_names):
        return []
    gids, coarse = groups
    summary = metrics.grouped(conf, gids)
    summary.sort(key=lambda g: -np.nan_to_num(g.accuracy, nan=-1.0))
    rows = [[coarse[g.group], ", ".join(data.name(i) for i in g.classes), g.support, pct(g.accuracy), pct(g.group_accuracy)]
            for g in summary]
    within, across = metrics.errors_within_groups(conf, gids)
    errors = within + across
    out = [f"## CIFAR-100 superclasses ({evaluation.split})", "",
           table(["superclass", "classes", "images", "accuracy", "right superclass"], rows, "llrrr"), "",
           "Right superclass: share of the images predicted as any class of their own superclass (coarse accuracy).", ""]
    if errors:
        out += [f"Errors within a superclass: **{within}** of {errors} ({pct(within / errors)}); across superclasses: "
                f"**{across}** ({pct(across / errors)}).", ""]
        # superclass pairs that absorb most cross-superclass errors
        known = gids >= 0
        n = len(coarse)
        member = np.zeros((len(gids), n), dtype=np.int64)
        member[np.flatnonzero(known), gids[known]] = 1
        gconf = member.T @ conf.astype(np.int64) @ member
        np.fill_diagonal(gconf, 0)
        flat = np.argsort(-gconf, axis=None, kind="stable")[:5]
        cross = [(int(i) // n, int(i) % n) for i in flat if gconf.flat[int(i)] > 0]
        if cross:
            out += ["Most confused superclasses (true -> predicted):", "",
                    table(["true superclass", "predicted superclass", "count"],
                          [[coarse[a], coarse[b], int(gconf[a, b])] for a, b in cross], "llr"), ""]
    return out


def _strip(data: RunData, conf: np.ndarray, arrays: dict[str, np.ndarray], evaluation: Evaluation,
           md_path: Path, stem: str) -> list[str]:
    pairs = metrics.most_confused(conf, 1)
    if not pairs:
        return []
    p = pairs[0]
    a, b = data.name(p.true), data.name(p.pred)
    out = [f"## Confused images: {a} vs {b} ({evaluation.split})", ""]
    split = str(evaluation.split)
    try:
        images = load_samples(data.path, split)
    except StoreError as exc:
        return out + [f"No image strip: {exc}.", ""]
    targets, preds = arrays.get("targets"), arrays.get("preds")
    if images is None or targets is None or preds is None or len(images) != len(targets):
        why = "no thumbnails were saved for this split (output.save_samples)" if images is None else \
            "the thumbnails and the predictions do not line up"
        return out + [f"No image strip: {why}.", ""]
    rows = [(p.true, p.pred, f"{a} predicted as {b}"), (p.pred, p.true, f"{b} predicted as {a}")]
    image, shown = confused_strip(images, targets, preds, arrays.get("pred_prob"), rows)
    if image is None:
        return out + ["No image strip: no sample of the pair was found.", ""]
    png = f"{stem}_confused.png"
    image.save(md_path.parent / png, optimize=True)
    return out + [f"![{a} vs {b}]({png})", "",
                  f"Top row: {a} images predicted as {b} ({p.count} in all); "
                  + (f"bottom row: {b} images predicted as {a} ({p.reverse} in all); " if len(shown) > 1 else "")
                  + "most confident mistakes first; p is the predicted class's probability, # the image's index in the "
                  "split.", ""]


def what_changed(d) -> list[str]:
    """The "What changed" section: this run (B) against a baseline (A), figures from :mod:`cifartui.diff`."""
    from cifartui.diff import points, summary_lines

    out = [f"## What changed against {d.a.run.name}", "",
           f"A (baseline): `{d.a.run.name}` {d.a.evaluation.split}, weights of epoch {d.a.evaluation.epoch}. "
           f"B (this run): {d.b.evaluation.split}, weights of epoch {d.b.evaluation.epoch}. Changes are B - A; "
           f"`cifartui diff {d.a.run.name} {d.b.run.name}{'' if d.b.evaluation.split == 'test' else ' --split val'}` "
           "shows the same figures.", "",
           f"{'⚠ ' if d.check.weaker else ''}{d.check.note[0].upper()}{d.check.note[1:]}.", ""]
    out += [f"- {line[0].upper()}{line[1:]}." for line in summary_lines(d)] + [""]
    rows = lambda cs: [[c.name, c.images, pct(c.acc_a), pct(c.acc_b), points(c.delta)] for c in cs]  # noqa: E731
    lost, gained = d.lost(TOP_CLASSES), d.gained(TOP_CLASSES)
    header = ["class", "images", "accuracy A", "accuracy B", "change (points)"]
    if lost:
        out += ["Classes that lost most:", "", table(header, rows(lost), "lrrrr"), ""]
    if gained:
        out += ["Classes that gained most:", "", table(header, rows(gained), "lrrrr"), ""]
    if d.cells:
        out += ["Confusion cells that changed most (a rise is more mistakes):", "",
                table(["true", "predicted as", "A", "B", "change"],
                      [[d.name(c.true), d.name(c.pred), c.count_a, c.count_b, f"{c.change:+d}"] for c in d.cells[:TOP_PAIRS]],
                      "llrrr"), ""]
    flips = d.flips(TOP_CLASSES)
    if flips:
        out += ["Flipped images, the most confident mistakes first (#: the image's index in the split):", "",
                table(["#", "true", "A predicted", "B predicted", "flip"],
                      [[f["index"], f["true"], f["pred_a"], f["pred_b"], kind.replace("_", " ")]
                       for kind, f in ((k, d.flip(i)) for k, i in flips)], "rllll"), ""]
    return out


def cmd_report(args) -> int:
    from cifartui.record.store import read_run, resolve_run, run_problems

    from cifartui.commands import root_of

    root = root_of(args)
    run_dir = resolve_run(args.run, root)
    summary = read_run(run_dir)
    problems = run_problems(run_dir)  # once: it opens every array of the run
    if summary.status == "unreadable":
        raise StoreError(f"run {summary.id}: nothing could be read.\n  " + "\n  ".join(problems or [summary.reason]))
    against = getattr(args, "against", None)
    if against is not None:
        against = resolve_run(against, root)
    path = build_report(run_dir, args.output, args.split, against, problems)
    for problem in problems:
        print(f"damaged: {problem}", file=sys.stderr)
    print(f"wrote {path}")
    return 0
