"""The runs filter, one language for ``cifartui runs --filter`` and ``/`` on the Runs screen.

Space-separated terms, all must hold (``-TERM`` negates one):

- ``tag:NAME``, ``status:completed``, ``model:resnet*``, ``data:cifar100`` (globs, any case)
- ``best_val>0.8``, ``test>=80%``, ``epochs<5`` (``>``, ``>=``, ``<``, ``<=``, ``=``, ``!=``; accuracies are
  fractions, or percent with ``%``; ``epochs`` counts the epochs done)
- ``cfg.train.lr=0.0001`` on the run's resolved ``config.yaml`` (numbers compare as numbers, strings as globs;
  the other operators too), read only when such a term is present and the cheaper terms hold
- any other word: a substring of the run's id or name

A bad term raises :class:`QueryError` naming the term, why, and the forms that exist (exit 2).
"""

from __future__ import annotations

import math
import operator
import re
import shlex
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Iterable

from cifartui.errors import UserError
from cifartui.record.events import END_STATUSES
from cifartui.record.store import RunSummary

STATUSES = ("running", *END_STATUSES, "crashed", "unknown", "unreadable")
FIELDS = {"tag": "tags", "status": "status", "model": "model", "data": "dataset"}
NUMBERS = {"best_val": "best_val_acc", "test": "test_acc", "epochs": "epochs_done"}
_ACCURACIES = ("best_val", "test")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": lambda a, b: not _close(a, b), "=": lambda a, b: _close(a, b),
    ">": operator.gt, "<": operator.lt,
}
_FIELD_TERM = re.compile(r"^(?P<key>[A-Za-z_]\w*):(?P<value>.*)$")
_COMPARISON = re.compile(r"^(?P<key>[A-Za-z_][\w.]*?)(?P<op>>=|<=|!=|==|=|>|<)(?P<value>.*)$")
FORMS = ("tag:NAME, status:STATUS, model:GLOB, data:NAME, best_val|test|epochs with > >= < <= = != and a number, "
         "cfg.KEY=VALUE, or a word of the id or name; -TERM negates")
Config = dict[str, Any]  # a run's config.yaml, flattened to dotted keys
ConfigKeys = Callable[[], Iterable[str]]


class QueryError(UserError):
    """A term of a filter that means nothing; the message names it and the forms that exist."""


def _close(a: Any, b: Any) -> bool:
    return math.isclose(a, b, rel_tol=1e-9) if isinstance(a, float) or isinstance(b, float) else a == b


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Term:
    text: str
    kind: str  # field, number, cfg, word
    key: str
    op: str
    value: Any
    negate: bool = False

    def holds(self, run: RunSummary, config: Callable[[], Config]) -> bool:
        return self._test(run, config) != self.negate

    def _test(self, run: RunSummary, config: Callable[[], Config]) -> bool:
        if self.kind == "word":
            return self.value in run.id.lower() or self.value in run.name.lower()
        if self.kind == "field":
            values = run.tags if self.key == "tags" else [getattr(run, self.key)]
            return any(fnmatchcase(v.lower(), self.value) for v in values)
        if self.kind == "number":
            have = getattr(run, self.key)
            return have is not None and _OPS[self.op](have, self.value)
        return _cfg_holds(config().get(self.key, _MISSING), self.op, self.value)


_MISSING = object()


def _cfg_holds(have: Any, op: str, want: str) -> bool:
    if have is _MISSING:
        return False
    number = _number(want)
    if isinstance(have, (int, float)) and not isinstance(have, bool) and number is not None:
        return _OPS[op](have, number)
    if op not in ("=", "!="):
        return False  # an order needs two numbers
    if have is None:
        text = "null"
        want = "null" if want.lower() in ("none", "~", "") else want
    elif isinstance(have, bool):
        text = "true" if have else "false"
    else:
        text = str(have)
    return fnmatchcase(text.lower(), want.lower()) == (op == "=")


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[Term, ...]

    @property
    def needs_config(self) -> bool:
        return any(t.kind == "cfg" for t in self.terms)

    def matches(self, run: RunSummary, config: Callable[[], Config] = dict) -> bool:
        """Whether every term holds; ``config()`` is called (once) only when a cfg term is reached."""
        loaded: list[Config] = []

        def once() -> Config:
            if not loaded:
                loaded.append(config())
            return loaded[0]

        return all(t.holds(run, once) for t in self.terms)


def _bad(term: str, why: str) -> QueryError:
    end = "" if why.endswith("?") else "."
    return QueryError(f"filter: bad term {term!r}: {why}{end}\n  Terms: {FORMS}.")


def _parse_term(text: str, config_keys: ConfigKeys | None) -> Term:
    negate = text[:1] in ("-", "!") and len(text) > 1
    body = text[1:] if negate else text
    field = _FIELD_TERM.match(body)
    if field:
        key, value = field["key"].lower(), field["value"]
        if key not in FIELDS:
            raise _bad(text, f"no field {key!r}; the fields are {', '.join(FIELDS)}")
        if not value:
            raise _bad(text, f"{key}: needs a value, e.g. {key}:{'completed' if key == 'status' else 'NAME'}")
        if key == "status" and not any(fnmatchcase(s, value.lower()) for s in STATUSES):
            raise _bad(text, f"no status {value!r}; the statuses are {', '.join(STATUSES)}")
        return Term(text, "field", FIELDS[key], ":", value.lower(), negate)
    comparison = _COMPARISON.match(body)
    if comparison:
        key, op, value = comparison["key"], comparison["op"].replace("==", "="), comparison["value"]
        if key.startswith("cfg."):
            return _cfg_term(text, key[4:], op, value, negate, config_keys)
        if key not in NUMBERS:
            raise _bad(text, f"{key!r} cannot be compared; the numbers are {', '.join(NUMBERS)}, "
                             "and cfg.KEY for a config value")
        percent = key in _ACCURACIES and value.endswith("%")
        number = _number(value[:-1] if percent else value)
        if number is None:
            raise _bad(text, f"{key} needs a number after {op}, e.g. {key}{op}{'0.8' if key in _ACCURACIES else '10'}")
        if percent:
            number /= 100
        elif key in _ACCURACIES and number > 1:
            raise _bad(text, f"{key} is a fraction from 0 to 1: write {key}{op}{number / 100:g} or {key}{op}{value}%")
        return Term(text, "number", NUMBERS[key], op, number, negate)
    if any(c in body for c in ":<>=!"):
        raise _bad(text, "not a term")
    if body.lower().startswith("cfg."):
        raise _bad(text, f"a config term needs an operator and a value, e.g. {body}=VALUE")
    return Term(text, "word", "", "", body.lower(), negate)


def _cfg_term(text: str, key: str, op: str, value: str, negate: bool, config_keys: ConfigKeys | None) -> Term:
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key):
        raise _bad(text, f"{key!r} is not a dotted config key such as train.lr")
    if config_keys is not None:
        known = list(config_keys())
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            raise _bad(text, f"no config key {key!r}" + (f"; did you mean cfg.{close[0]}?" if close else ""))
    if op not in ("=", "!=") and _number(value) is None:
        raise _bad(text, f"{op} needs a number, e.g. cfg.{key}{op}0.001")
    return Term(text, "cfg", key, op, value, negate)


def parse_query(text: str, config_keys: ConfigKeys | None = None) -> Query:
    """The terms of ``text`` (empty: a query every run matches). ``config_keys``, when given, returns the dotted
    keys a config may have (called only for a cfg term; ``cifartui.config.dotted_keys``): a cfg term naming
    another gets a "did you mean"."""
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        raise QueryError(f"filter: {text!r}: {exc} (quote a value with spaces as cfg.KEY=\"a b\").") from None
    terms = [_parse_term(p, config_keys) for p in parts]
    # cfg terms last (a stable sort): a run the other terms refuse never has its config read
    return Query(text, tuple(sorted(terms, key=lambda t: t.kind == "cfg")))


def filter_runs(runs: list[RunSummary], query: Query) -> list[RunSummary]:
    """The runs ``query`` matches, in their order. cfg terms read configs through the root's config cache."""
    if not query.terms:
        return list(runs)
    if not query.needs_config:
        return [r for r in runs if query.matches(r)]
    from cifartui.record.config_index import ConfigIndex

    indexes: dict[Path, ConfigIndex] = {}

    def index_of(run: RunSummary) -> ConfigIndex:
        root = Path(run.path).parent
        if root not in indexes:
            indexes[root] = ConfigIndex(root)
        return indexes[root]

    out = [r for r in runs if query.matches(r, lambda r=r: index_of(r).get(r.path))]
    for index in indexes.values():
        index.save()
    return out
