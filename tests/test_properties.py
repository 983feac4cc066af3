"""Property-based tests: the config loader and the events reader never fail in an unexpected way."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifartui import config
from cifartui.config import Config, ConfigError
from cifartui.record.store import read_events

SECTIONS = {name: list(field.annotation.model_fields) for name, field in Config.model_fields.items()
            if hasattr(field.annotation, "model_fields")}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.integers(), max_size=3))
keys = st.one_of(st.sampled_from([k for fields in SECTIONS.values() for k in fields]), st.text(min_size=1, max_size=8))
documents = st.dictionaries(
    st.one_of(st.sampled_from(list(Config.model_fields)), st.text(min_size=1, max_size=8)),
    st.one_of(scalars, st.dictionaries(keys, scalars, max_size=5)), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_is_a_config_or_a_config_error(doc):
    try:
        cfg = config.validate(doc)
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith("config: invalid config") and "\n  " in msg
        return
    assert config.load_text(cfg.to_yaml()) == cfg  # whatever validates also round-trips


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_yaml_text_is_a_config_or_a_config_error(text):
    try:
        config.load_text(text)
    except ConfigError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["train.lr", "train.epochs", "data.source", "model.name", "nope.x", "train"]),
                       st.text(max_size=10), max_size=4))
def test_any_override_is_applied_or_refused_cleanly(overrides):
    try:
        config.load(None, [f"{k}={v}" for k, v in overrides.items()])
    except ConfigError:
        pass


EVENTS = [{"type": "log", "time": float(i), "message": f"m{i}"} for i in range(6)]
FULL = "".join(json.dumps(e) + "\n" for e in EVENTS).encode()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(FULL)))
def test_a_truncated_events_file_reads_as_a_prefix(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("ev") / "events.jsonl"
    path.write_bytes(FULL[:cut])
    events, offset = read_events(path)
    assert events == EVENTS[: len(events)]
    assert offset == FULL[:cut].rfind(b"\n") + 1
    # whole lines before the cut are all there
    assert len(events) == FULL[:cut].count(b"\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 300))
def test_garbled_bytes_never_raise_and_yield_only_typed_objects(tmp_path_factory, junk, at):
    path = tmp_path_factory.mktemp("ev") / "events.jsonl"
    at = min(at, len(FULL))
    path.write_bytes(FULL[:at] + junk + FULL[at:])
    events, _ = read_events(path)
    assert all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in events)
