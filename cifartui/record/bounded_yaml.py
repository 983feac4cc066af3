"""YAML with limits: a safe loader that refuses alias bombs and deep nesting before anything is built.

One loader for every YAML the project reads: config files and --set values (``cifartui.config``) and a run's
``config.yaml`` read back by the store. Torch-free, in ``record`` so that both can import it.
"""

from __future__ import annotations

from typing import Any

import yaml

# A config is a few dozen settings. YAML can describe far more than it spells out: aliases expand
# (a 400-byte "billion laughs" file names 10^9 nodes) and nesting recurses (10,000 '[' end in a
# RecursionError). Anchors and merge keys (<<: *base) stay allowed, within these bounds, because they
# are a fair way to share a section between configs; the bounds are counted while composing, before
# anything is built, so a hostile file costs a few milliseconds and a short message.
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 10_000  # nodes after expanding aliases; a full config has about 60
MAX_CONFIG_BYTES = 1 << 20


class YAMLLimit(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any = None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents nested deeper than MAX_YAML_DEPTH or larger than MAX_YAML_NODES
    nodes once aliases are expanded (each alias counts the whole subtree it stands for)."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self._depth >= MAX_YAML_DEPTH:
            raise YAMLLimit(f"nested deeper than {MAX_YAML_DEPTH} levels (a config needs 3)", event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(event, yaml.AliasEvent):
            size = self._sizes.get(id(node), 1)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes.get(id(c), 1) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
        else:
            size = 1
        if size > MAX_YAML_NODES:
            raise YAMLLimit(
                f"aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?); a config has about 60",
                event.start_mark,
            )
        self._sizes[id(node)] = size
        return node


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the bounds above; raises yaml.YAMLError (a YAMLLimit past a bound)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # a bound above should come first; never a traceback
        raise YAMLLimit(f"nested too deeply (more than {MAX_YAML_DEPTH} levels)") from None
    finally:
        loader.dispose()
