"""The dashboard: server-rendered pages (Jinja2, SVG charts, no script) over the same service
functions as the API, behind a sign-in with server-side sessions (docs/dashboard.md)."""
