"""Web pages of the reference server: what students and teachers open in a browser.

The protocol's JSON endpoints stay as they are for API clients; these pages live beside
them, under ``/`` (the landing page and its login form) and ``/app/``. They show what the
protocol would answer the same user, by calling the same code (``server.wire``'s results,
the protocol's own submit and join views), so a page can never show more than the API.
Plain HTML forms and one stylesheet: no JavaScript is needed or served.
"""
