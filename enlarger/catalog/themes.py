"""Themes: how a product's composites look, chosen per job by the webhook's `theme`.

A theme names a background (solid, gradient or studio, with its colours), whether the
product casts a shadow, how much of the frame it fills, the aspect ratios to render (each
`long_side` on its long edge) and the marketplace presets to render as well. Presets
carry their own rules: `shopify` is a 2048 x 2048 square on the theme's background;
`amazon-main` is 2000 x 2000 on pure white (255), the product filling 90 % of the frame
(Amazon asks for at least 85 %), no shadow. A theme may set a preset's fill of its own
(`preset_fill`).

Built in: `default` (a light studio with a floor shadow), `white` and `gradient`. More can
be defined in a TOML file (setting `product_themes_file`):

    [themes.summer]
    background = "gradient"
    colours = ["#fdf6e3", "#f5d0a9"]
    shadow = false
    aspects = ["1:1", "4:5"]
    presets = ["shopify", "amazon-main"]
    preset_fill = { amazon-main = 0.87 }

A theme listed in `product_external_themes` (or with `external = true`) is run by an
external worker: its jobs wait in NEW until started through the API.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from enlarger.config import Settings, SettingsError
from enlarger.media.compose import ASPECTS, Background, Placement

DEFAULT_THEME = "default"


@dataclass(frozen=True)
class Preset:
    width: int
    height: int
    background: Background | None  # None: the theme's
    fill: float
    shadow: bool | None  # None: the theme's
    min_fill: float = 0.1  # the marketplace's own rule


AMAZON_MIN_FILL = 0.85


PRESETS: dict[str, Preset] = {
    "shopify": Preset(2048, 2048, None, 0.8, None),
    "amazon-main": Preset(
        2000, 2000, Background("solid", ((255, 255, 255),)), 0.9, False, AMAZON_MIN_FILL
    ),
}


@dataclass(frozen=True)
class Theme:
    name: str
    background: Background
    shadow: bool = True
    fill: float = 0.8
    aspects: tuple[str, ...] = tuple(ASPECTS)
    presets: tuple[str, ...] = tuple(PRESETS)
    long_side: int = 2048
    external: bool = False
    preset_fill: tuple[tuple[str, float], ...] = ()  # (preset, fill) overriding the preset's

    def __post_init__(self) -> None:
        unknown = [a for a in self.aspects if a not in ASPECTS]
        unknown += [p for p in self.presets if p not in PRESETS]
        if unknown:
            raise ValueError(f"theme {self.name!r}: unknown aspects or presets {unknown}")
        if not 0.1 <= self.fill <= 1.0:
            raise ValueError(f"theme {self.name!r}: fill must be between 0.1 and 1")
        if not self.aspects and not self.presets:
            raise ValueError(f"theme {self.name!r} renders nothing (no aspects, no presets)")
        for preset, fill in self.preset_fill:
            if preset not in PRESETS:
                raise ValueError(
                    f"theme {self.name!r}: preset_fill names unknown preset {preset!r}"
                )
            if preset not in self.presets:
                raise ValueError(
                    f"theme {self.name!r}: preset_fill names {preset}, which the theme does "
                    f"not render (presets = {list(self.presets)})"
                )
            if not PRESETS[preset].min_fill <= fill <= 1.0:
                raise ValueError(
                    f"theme {self.name!r}: {preset} fill must be between "
                    f"{PRESETS[preset].min_fill:g} and 1 (the marketplace's rule), not {fill:g}"
                )

    def placement(self, preset_name: str | None = None) -> Placement:
        """Where the product goes in one of this theme's aspects, or in a preset."""
        if preset_name is None:
            return Placement(self.fill, self.background.kind == "studio", self.shadow)
        preset = PRESETS[preset_name]
        background = preset.background or self.background
        return Placement(
            fill=dict(self.preset_fill).get(preset_name, preset.fill),
            on_floor=background.kind == "studio",
            shadow=self.shadow if preset.shadow is None else preset.shadow,
        )


BUILTIN_THEMES: dict[str, Theme] = {
    "default": Theme("default", Background("studio", ((238, 238, 240), (218, 218, 222)))),
    "white": Theme("white", Background("solid", ((255, 255, 255),)), shadow=False),
    "gradient": Theme(
        "gradient", Background("gradient", ((246, 246, 248), (214, 218, 226))), shadow=False
    ),
}


def _colour(value: Any) -> tuple[int, int, int]:
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    if isinstance(value, list) and len(value) == 3 and all(0 <= int(v) <= 255 for v in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    raise ValueError(f"a colour is '#rrggbb' or [r, g, b], not {value!r}")


def _theme_from_toml(name: str, table: dict[str, Any]) -> Theme:
    known = {
        "background",
        "colours",
        "shadow",
        "fill",
        "aspects",
        "presets",
        "long_side",
        "external",
        "preset_fill",
    }
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"theme {name!r}: unknown keys {sorted(unknown)}")
    background = Background(
        table.get("background", "solid"),
        tuple(_colour(c) for c in table.get("colours", ["#ffffff"])),
    )
    options = {k: table[k] for k in ("shadow", "fill", "long_side", "external") if k in table}
    for key in ("aspects", "presets"):
        if key in table:
            options[key] = tuple(table[key])
    if "preset_fill" in table:
        if not isinstance(table["preset_fill"], dict):
            raise ValueError(f"theme {name!r}: preset_fill is a table of preset = fill")
        options["preset_fill"] = tuple(
            (str(preset), float(fill)) for preset, fill in table["preset_fill"].items()
        )
    return Theme(name, background, **options)


def load_themes(settings: Settings) -> dict[str, Theme]:
    """The built-in themes, those of `product_themes_file`, with `external` set for the
    names in `product_external_themes`. SettingsError names what is wrong."""
    themes = dict(BUILTIN_THEMES)
    if settings.product_themes_file:
        path = Path(settings.product_themes_file)
        try:
            data = tomllib.loads(path.read_text())
            for name, table in data.get("themes", {}).items():
                themes[name] = _theme_from_toml(name, table)
        except (OSError, tomllib.TOMLDecodeError, ValueError, TypeError) as exc:
            raise SettingsError(f"product_themes_file {path}: {exc}") from None
    external = {
        part.strip() for part in settings.product_external_themes.split(",") if part.strip()
    }
    unknown = external - set(themes)
    if unknown:
        raise SettingsError(f"product_external_themes names unknown themes: {sorted(unknown)}")
    return {
        name: replace(t, external=True) if name in external else t for name, t in themes.items()
    }
