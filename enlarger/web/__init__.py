"""The dashboard's templates and static files (plain HTML, CSS and JS: no build step).
The pages are served by `enlarger.api.web`; everything they show comes from the API."""

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
