"""Culling decisions in XMP, as Lightroom, darktable and digiKam write and read them: a
rating (`xmp:Rating`, -1 for a rejected photo), a colour label (`xmp:Label` by name,
`darktable:colorlabels` by number, `digiKam:ColorLabel` by number) and digiKam's pick
label (`digiKam:PickLabel`). Reading takes any of them; writing sets them all and keeps
everything else a sidecar holds (a raw developer's edit history, keywords).

XMP comes from users' files, so it is parsed with defusedxml (no entities, no DTDs)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from defusedxml import ElementTree as SafeET

PICK, REJECT, UNFLAGGED = "pick", "reject", "unflagged"
FLAGS = (PICK, REJECT, UNFLAGGED)
LABELS = ("red", "yellow", "green", "blue", "purple")  # darktable's numbers are the index

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "darktable": "http://darktable.sf.net/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
}
for _prefix, _uri in NS.items():  # written back under the names the tools use
    ET.register_namespace(_prefix, _uri)

# digiKam's numbers: 0 none, 1 red, 2 orange, 3 yellow, 4 green, 5 blue, 6 magenta, …
DIGIKAM_COLOURS = {"red": 1, "yellow": 3, "green": 4, "blue": 5, "purple": 6}
DIGIKAM_PICKS = {UNFLAGGED: 0, REJECT: 1, PICK: 3}  # 2 is "pending"

RATING, LABEL = f"{{{NS['xmp']}}}Rating", f"{{{NS['xmp']}}}Label"
DT_LABELS = f"{{{NS['darktable']}}}colorlabels"
DK_PICK, DK_COLOUR = f"{{{NS['digiKam']}}}PickLabel", f"{{{NS['digiKam']}}}ColorLabel"
DESCRIPTION, RDF = f"{{{NS['rdf']}}}Description", f"{{{NS['rdf']}}}RDF"
SEQ, LI = f"{{{NS['rdf']}}}Seq", f"{{{NS['rdf']}}}li"
WRITTEN = (RATING, LABEL, DT_LABELS, DK_PICK, DK_COLOUR)


class XmpError(ValueError):
    """The packet is not XML, or not XMP."""


@dataclass(frozen=True)
class Decisions:
    """A photo's culling state. `rating` is 0 to 5 stars; a rejection is the flag."""

    flag: str = UNFLAGGED
    rating: int = 0
    label: str | None = None


def read_decisions(packet: bytes) -> Decisions | None:
    """The decisions an XMP packet records, or None when it records none (or is broken:
    a bad sidecar never fails its photo)."""
    try:
        descriptions = _descriptions(_parse(packet))
    except XmpError:
        return None
    values = {tag: _value(descriptions, tag) for tag in WRITTEN}
    rating, flag = _integer(values[RATING]), UNFLAGGED
    pick = _integer(values[DK_PICK])
    if rating is not None and rating < 0:
        flag = REJECT
    elif pick is not None:
        flag = {v: k for k, v in DIGIKAM_PICKS.items()}.get(pick, UNFLAGGED)
    label = _label(values)
    if rating is None and label is None and flag == UNFLAGGED:
        return None
    return Decisions(flag, min(max(rating or 0, 0), 5), label)


def write_decisions(packet: bytes | None, decisions: Decisions) -> bytes:
    """A sidecar recording `decisions`: `packet` (an existing sidecar) with its decision
    properties replaced and all else kept, or a new one. XmpError when `packet` is not
    XMP, so a file that is something else is never overwritten."""
    root = _parse(packet) if packet else _new_packet()
    descriptions = _descriptions(root)
    for description in descriptions:
        for tag in WRITTEN:
            description.attrib.pop(tag, None)
            for child in description.findall(tag):
                description.remove(child)
    target = descriptions[0]
    target.set(RATING, "-1" if decisions.flag == REJECT else str(decisions.rating))
    target.set(DK_PICK, str(DIGIKAM_PICKS[decisions.flag]))
    if decisions.label is not None:
        target.set(LABEL, decisions.label.capitalize())
        target.set(DK_COLOUR, str(DIGIKAM_COLOURS[decisions.label]))
        sequence = ET.SubElement(ET.SubElement(target, DT_LABELS), SEQ)
        ET.SubElement(sequence, LI).text = str(LABELS.index(decisions.label))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _parse(packet: bytes) -> ET.Element:
    try:
        root = SafeET.fromstring(packet)
    except (ET.ParseError, ValueError) as error:  # defusedxml's refusals are ValueErrors
        raise XmpError(f"not XML: {error}") from None
    if root.tag != RDF and root.find(f".//{RDF}") is None:
        raise XmpError("no rdf:RDF in it")
    return root


def _new_packet() -> ET.Element:
    root = ET.Element(f"{{{NS['x']}}}xmpmeta")
    rdf = ET.SubElement(root, RDF)
    ET.SubElement(rdf, DESCRIPTION, {f"{{{NS['rdf']}}}about": ""})
    return root


def _descriptions(root: ET.Element) -> list[ET.Element]:
    """The rdf:Description elements, one made when the RDF has none."""
    rdf = root if root.tag == RDF else root.find(f".//{RDF}")
    if rdf is None:
        raise XmpError("no rdf:RDF in it")
    found = rdf.findall(DESCRIPTION)
    return found or [ET.SubElement(rdf, DESCRIPTION, {f"{{{NS['rdf']}}}about": ""})]


def _value(descriptions: list[ET.Element], tag: str) -> str | None:
    """A property as an attribute, a simple element, or the first item of a list."""
    for description in descriptions:
        if tag in description.attrib:
            return description.attrib[tag].strip()
        child = description.find(tag)
        if child is not None:
            item = child.find(f".//{LI}")
            text = (item if item is not None else child).text
            return text.strip() if text else None
    return None


def _integer(text: str | None) -> int | None:
    try:
        return None if text is None else round(float(text))
    except ValueError:
        return None


def _label(values: dict[str, str | None]) -> str | None:
    name = (values[LABEL] or "").lower()
    if name in LABELS:
        return name
    number = _integer(values[DT_LABELS])
    if number is not None and 0 <= number < len(LABELS):
        return LABELS[number]
    colour = _integer(values[DK_COLOUR])
    return next((k for k, v in DIGIKAM_COLOURS.items() if v == colour), None)
