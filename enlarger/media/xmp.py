"""Culling decisions in XMP, as Lightroom, Capture One, Photo Mechanic, darktable and
digiKam write and read them: a rating (`xmp:Rating`, -1 for a rejected photo), a colour
label (`xmp:Label` by name, `darktable:colorlabels` by number, `digiKam:ColorLabel` by
number) and a pick (`digiKam:PickLabel`, Photo Mechanic's `photomechanic:Tagged`).
Reading takes any of them; writing sets them all and keeps everything else a sidecar
holds (a raw developer's edit history, keywords, another tool's label name, darktable's
other colour labels, Photo Mechanic's Prefs kept in step, the namespace prefixes it was
written with, its `<?xpacket?>` wrapper).

Lightroom Classic, Capture One and darktable read no pick from XMP. So that a pick still
reaches them, `picks_as` writes an unrated pick with one star, or an unlabelled pick with
a colour label; `enlarger:PickRating` / `enlarger:PickLabel` say the star or the label
stands for the pick, so reading the file back gives the pick, not a rating.

XMP comes from users' files, so it is parsed with defusedxml (no entities, no DTDs)."""

from __future__ import annotations

import contextlib
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

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
    "photomechanic": "http://ns.camerabits.com/photomechanic/1.0/",
    "enlarger": "https://enlarger.dev/ns/xmp/1.0/",
}
for _prefix, _uri in NS.items():  # written back under the names the tools use
    ET.register_namespace(_prefix, _uri)

# digiKam's numbers: 0 none, 1 red, 2 orange, 3 yellow, 4 green, 5 blue, 6 magenta, …
DIGIKAM_COLOURS = {"red": 1, "yellow": 3, "green": 4, "blue": 5, "purple": 6}
DIGIKAM_PICKS = {UNFLAGGED: 0, REJECT: 1, PICK: 3}  # 2 is "pending"

RATING, LABEL = f"{{{NS['xmp']}}}Rating", f"{{{NS['xmp']}}}Label"
DT_LABELS = f"{{{NS['darktable']}}}colorlabels"
DK_PICK, DK_COLOUR = f"{{{NS['digiKam']}}}PickLabel", f"{{{NS['digiKam']}}}ColorLabel"
PM_TAGGED = f"{{{NS['photomechanic']}}}Tagged"
PM_PREFS = f"{{{NS['photomechanic']}}}Prefs"  # "tagged:colour class:rating:frame"
PICK_RATING, PICK_LABEL = f"{{{NS['enlarger']}}}PickRating", f"{{{NS['enlarger']}}}PickLabel"
DESCRIPTION, RDF = f"{{{NS['rdf']}}}Description", f"{{{NS['rdf']}}}RDF"
ABOUT = f"{{{NS['rdf']}}}about"
SEQ, LI = f"{{{NS['rdf']}}}Seq", f"{{{NS['rdf']}}}li"
WRITTEN = (RATING, LABEL, DT_LABELS, DK_PICK, DK_COLOUR, PM_TAGGED, PICK_RATING, PICK_LABEL)
PACKET_BEGIN = b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
PACKET_END = b'<?xpacket end="w"?>'
PADDING = 2048  # bytes of room a packet leaves for later changes, as Adobe's do
PICKS_AS_RATING, PICKS_AS_NOTHING = "rating", "none"
PICKS_AS = (PICKS_AS_RATING, PICKS_AS_NOTHING, *LABELS)  # a label name: picks get that label


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
    elif (values[PM_TAGGED] or "").lower() == "true":
        flag = PICK
    label = _label(values, _list(descriptions, DT_LABELS))
    if rating is None and label is None and flag == UNFLAGGED:
        return None
    if flag == PICK and rating is not None and str(rating) == values[PICK_RATING]:
        rating = 0  # the star only stood for the pick
    if flag == PICK and label is not None and label == values[PICK_LABEL]:
        label = None
    return Decisions(flag, min(max(rating or 0, 0), 5), label)


def pick_unsaid(packet: bytes) -> bool:
    """Whether the packet is silent on picks: none of the properties a pick is kept in
    (digiKam's PickLabel, Photo Mechanic's Tagged, which enlarger writes too) and no
    reject. Lightroom, Capture One and darktable write stars, and a reject as -1 stars,
    but keep a pick to themselves: their sidecar's "not picked" is no decision."""
    try:
        descriptions = _descriptions(_parse(packet))
    except XmpError:
        return True
    rating = _integer(_value(descriptions, RATING))
    said = (_value(descriptions, tag) is not None for tag in (DK_PICK, PM_TAGGED, PM_PREFS))
    return not any(said) and not (rating is not None and rating < 0)


def write_decisions(
    packet: bytes | None, decisions: Decisions, picks_as: str = PICKS_AS_RATING
) -> bytes:
    """A sidecar recording `decisions`: `packet` (an existing sidecar) with its decision
    properties replaced and all else kept, or a new one. XmpError when `packet` is not
    XMP, so a file that is something else is never overwritten."""
    root = _parse(packet) if packet else _new_packet()
    _set_decisions(root, decisions, picks_as)
    return _serialised(root, packet)


def needs_writing(packet: bytes | None, decisions: Decisions, picks_as: str) -> bool:
    """Whether writing the decisions would change what the packet says (every property
    each tool reads, not only what enlarger reads back: darktable's colour label alone
    is not Lightroom's `xmp:Label`). XmpError when it is not XMP."""
    if packet is None:
        return True
    root = _parse(packet)
    found = _decision_values(_descriptions(root))
    _set_decisions(root, decisions, picks_as)
    return found != _decision_values(_descriptions(root))


def in_packet(document: bytes, size: int | None = None) -> bytes:
    """An XMP document in its `<?xpacket?>` wrapper, padded with spaces to `size` bytes
    (or with `PADDING` bytes of room). ValueError when it is bigger than `size`."""
    body = document.strip()
    for opening in (b"<?xml", b"<?xpacket begin"):  # one declaration, one wrapper: not two
        if body.startswith(opening):
            body = body[body.index(b"?>") + 2 :].strip()
    if body.endswith(b"?>") and b"<?xpacket end" in body[-40:]:
        body = body[: body.rindex(b"<?xpacket end")].strip()
    bare = len(PACKET_BEGIN) + len(body) + 1 + len(PACKET_END)
    room = PADDING if size is None else size - bare
    if room < 0:
        raise ValueError("the packet does not fit")
    lines = b"".join(b" " * 99 + b"\n" for _ in range(room // 100)) + b" " * (room % 100)
    return PACKET_BEGIN + body + b"\n" + lines + PACKET_END


def _serialised(root: ET.Element, original: bytes | None) -> bytes:
    """As it was written: in its wrapper when it came in one."""
    if original is not None and b"<?xpacket begin" in original[:512]:
        return in_packet(ET.tostring(root, encoding="utf-8"))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _set_decisions(root: ET.Element, decisions: Decisions, picks_as: str) -> None:
    descriptions = _descriptions(root)
    other_label = _value(descriptions, LABEL)  # a label name of another tool's ("To Print")
    if other_label is not None and other_label.lower() in LABELS:
        other_label = None
    other_colour = _value(descriptions, DK_COLOUR)  # digiKam's orange, grey, black…
    if other_colour is not None and _integer(other_colour) in DIGIKAM_COLOURS.values():
        other_colour = None
    darktable = _list(descriptions, DT_LABELS)  # darktable keeps several
    prefs = _value(descriptions, PM_PREFS)
    for description in descriptions:
        for tag in (*WRITTEN, PM_PREFS):
            description.attrib.pop(tag, None)
            for child in description.findall(tag):
                description.remove(child)
    target = descriptions[0]
    rating, label = decisions.rating, decisions.label
    if decisions.flag == PICK and rating == 0 and picks_as == PICKS_AS_RATING:
        rating = 1
        target.set(PICK_RATING, "1")
    if decisions.flag == PICK and label is None and picks_as in LABELS:
        label = picks_as
        target.set(PICK_LABEL, label)
    target.set(RATING, "-1" if decisions.flag == REJECT else str(rating))
    target.set(DK_PICK, str(DIGIKAM_PICKS[decisions.flag]))
    target.set(PM_TAGGED, "True" if decisions.flag == PICK else "False")
    if prefs is not None:  # Photo Mechanic's own copy, kept in step
        fields = prefs.split(":")
        fields[0] = "1" if decisions.flag == PICK else "0"
        if len(fields) > 2:
            fields[2] = str(rating if decisions.flag != REJECT else 0)
        target.set(PM_PREFS, ":".join(fields))
    if label is not None:
        target.set(LABEL, label.capitalize())
        target.set(DK_COLOUR, str(DIGIKAM_COLOURS[label]))
        number = str(LABELS.index(label))
        kept = darktable if number in darktable else [number, *darktable[1:]]
        sequence = ET.SubElement(ET.SubElement(target, DT_LABELS), SEQ)
        for item in kept:
            ET.SubElement(sequence, LI).text = item
    else:
        if other_label is not None:
            target.set(LABEL, other_label)
        if other_colour is not None:
            target.set(DK_COLOUR, other_colour)
    rdf = _rdf(root)
    for description in descriptions[1:]:  # one left with nothing to say goes
        if not list(description) and set(description.attrib) <= {ABOUT}:
            rdf.remove(description)


def _decision_values(descriptions: list[ET.Element]) -> dict[str, Any]:
    found: dict[str, Any] = {tag: _value(descriptions, tag) for tag in (*WRITTEN, PM_PREFS)}
    found[DT_LABELS] = _list(descriptions, DT_LABELS)
    return found


def _list(descriptions: list[ET.Element], tag: str) -> list[str]:
    """Every item of a list property (or its one value)."""
    for description in descriptions:
        if tag in description.attrib:
            return [description.attrib[tag].strip()]
        child = description.find(tag)
        if child is not None:
            items = [(li.text or "").strip() for li in child.iter(LI)]
            return items or [(child.text or "").strip()]
    return []


DERIVED_FROM = f"{{{NS['xmpMM']}}}DerivedFrom"


def renamed_source(packet: bytes, old: str, new: str) -> bytes:
    """The packet with its `xmpMM:DerivedFrom` (the file a sidecar describes, as darktable
    writes it) changed from `old` to `new`, the name that file got; the packet as it was
    when it names another file, or is not XMP."""
    try:
        root = _parse(packet)
    except XmpError:
        return packet
    changed = False
    for description in _descriptions(root):
        if description.attrib.get(DERIVED_FROM) == old:
            description.set(DERIVED_FROM, new)
            changed = True
        for child in description.findall(DERIVED_FROM):
            if (child.text or "").strip() == old:
                child.text = new
                changed = True
    if not changed:
        return packet
    return _serialised(root, packet)


def _parse(packet: bytes) -> ET.Element:
    try:
        root = SafeET.fromstring(packet)
        _keep_prefixes(packet)
    except (ET.ParseError, ValueError) as error:  # defusedxml's refusals are ValueErrors
        raise XmpError(f"not XML: {error}") from None
    _check_depth(root)
    if root.tag != RDF and root.find(f".//{RDF}") is None:
        raise XmpError("no rdf:RDF in it")
    return root


MAX_DEPTH = 100  # real packets nest a dozen levels; deeper would exhaust the recursion of
# ElementTree's writer


def _check_depth(root: ET.Element) -> None:
    """XmpError for a packet nested deeper than MAX_DEPTH (looked at without recursion)."""
    level: list[tuple[ET.Element, int]] = [(root, 1)]
    while level:
        element, depth = level.pop()
        if depth > MAX_DEPTH:
            raise XmpError(f"nested more than {MAX_DEPTH} elements deep")
        level.extend((child, depth + 1) for child in element)


def _keep_prefixes(packet: bytes) -> None:
    """Write the packet's namespaces back under the prefixes it gave them (`aux:`, not
    `ns4:`): ElementTree knows only registered ones."""
    for _, (prefix, uri) in SafeET.iterparse(io.BytesIO(packet), events=("start-ns",)):
        if prefix and prefix not in NS and not re.fullmatch(r"ns\d+", prefix):
            with contextlib.suppress(ValueError):
                ET.register_namespace(prefix, uri)


def _rdf(root: ET.Element) -> ET.Element:
    rdf = root if root.tag == RDF else root.find(f".//{RDF}")
    if rdf is None:
        raise XmpError("no rdf:RDF in it")
    return rdf


def _new_packet() -> ET.Element:
    root = ET.Element(f"{{{NS['x']}}}xmpmeta")
    rdf = ET.SubElement(root, RDF)
    ET.SubElement(rdf, DESCRIPTION, {f"{{{NS['rdf']}}}about": ""})
    return root


def _descriptions(root: ET.Element) -> list[ET.Element]:
    """The rdf:Description elements, one made when the RDF has none."""
    rdf = _rdf(root)
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


def _label(values: dict[str, str | None], darktable: list[str]) -> str | None:
    """The colour label, from Lightroom's name, else darktable's (of its several, the one
    the others name, else its first), else digiKam's. Where the three disagree, the one
    that differs from the two others is the edit (a tool changes its own property;
    enlarger wrote all three alike): darktable's new label beside the Lightroom name
    enlarger wrote before wins."""
    name = (values[LABEL] or "").lower()
    colour = _integer(values[DK_COLOUR])
    digikam = next((k for k, v in DIGIKAM_COLOURS.items() if v == colour), None)
    numbers = [_integer(item) for item in darktable]
    listed = [LABELS[n] for n in numbers if n is not None and 0 <= n < len(LABELS)]
    dark = next((label for label in (name, digikam) if label in listed), None)
    said = [name if name in LABELS else None, dark or next(iter(listed), None), digikam]
    present = [label for label in said if label is not None]
    if len(present) == 3 and len(set(present)) == 2:
        return next(label for label in present if present.count(label) == 1)
    return present[0] if present else None
