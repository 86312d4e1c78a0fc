"""Server-rendered web UI (Jinja2, autoescaped, no JavaScript) and the security headers."""
