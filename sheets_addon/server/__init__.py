"""The Flask backend that the Google Sheets add-on and other servers call.

``create_app`` builds the WSGI app for one spec project; ``create_app_from_env``
does the same from ``SYNCPLAN_*`` variables for production WSGI servers. See
``docs/server.md``.
"""

from sheets_addon.server.app import (
    Backend,
    ServerConfigError,
    create_app,
    create_app_from_env,
)
from sheets_addon.server.auth import GOOGLE_CERTS_URL

__all__ = ["GOOGLE_CERTS_URL", "Backend", "ServerConfigError", "create_app",
           "create_app_from_env"]
