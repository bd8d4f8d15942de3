"""``aria.engine.gtpyhop`` is :mod:`aria.apps.engine.gtpyhop` itself (not a copy).

The module replaces itself in ``sys.modules`` with the real one, so that assigning
``aria.engine.gtpyhop.verbose`` or ``.current_domain`` changes the settings the planner reads.
"""

import sys

from aria.apps.engine import gtpyhop as _gtpyhop

sys.modules[__name__] = _gtpyhop
