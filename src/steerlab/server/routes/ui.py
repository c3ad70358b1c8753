"""The web UI: the static files in ``server/static`` served at ``/`` (index.html for ``/``).

The UI is plain ES modules with no build step and no bundler hash in the file names, so browsers
are told to revalidate every file (``Cache-Control: no-cache``; unchanged files answer 304 from their
ETag). Without it a browser may keep an old module for days after an upgrade and mix it with new ones.
The UI reads everything through the public HTTP API with the user's key; these files hold no data.
"""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class _RevalidatedFiles(StaticFiles):
    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    """The ASGI app to mount at ``/`` after every API route (a mount there matches all paths)."""
    return _RevalidatedFiles(directory=STATIC_DIR, html=True)
