"""The browser interface: server-rendered pages over what :mod:`headwater.server` decides.

This layer sits above ``server/`` and below ``cli/``. It never makes a second decision: who may
see what is :func:`headwater.server.authz.decide`'s answer, which source serves a project is the
composed index's (:mod:`headwater.policy`). See docs/web-interface.md.

How a page is added (the whole recipe):

1. a handler ``async def page(request: Request, ui: Interface) -> Response`` in a module of this
   package, returning :meth:`Interface.render` of a template under ``templates/`` that extends
   ``base.html``;
2. an entry in :func:`headwater.ui.routes.ui_routes` (with :func:`~headwater.ui.routes.page`);
3. an entry in :data:`headwater.server.routes.ROUTES` with ``layer="ui"`` and the authz action
   the handler asks :meth:`Interface.authorize` about.
"""

from headwater.ui.factory import app_from_env, build_app
from headwater.ui.interface import Interface

__all__ = ["Interface", "app_from_env", "build_app"]
