"""Optional extras: libraries only some commands need, imported when those commands run.

``tensorboard`` (``pip install 'cifartui[tensorboard]'``): ``export --tensorboard``.

``analysis`` (``pip install 'cifartui[analysis]'``): grad-cam for ``cam`` and the drilldown's ``g``/``G``,
cleanlab for ``suspects`` and the Suspects view. Without it those say what to install (exit 2) and
everything else works; nothing imports them at start-up.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cifartui.errors import UserError

class MissingExtra(UserError):
    """An optional library is not installed; the message says which extra brings it."""


def require(module: str, package: str, what: str, extra: str = "analysis") -> ModuleType:
    """``module`` imported, or MissingExtra naming ``package`` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{what} needs {package}, which is not installed ({exc.msg}).\n"
                           f"  Install the {extra} extra: pip install 'cifartui[{extra}]'") from None
