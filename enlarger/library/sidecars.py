"""A photo's `.xmp` sidecars and how its decisions reach other tools through them.

Tools look for a photo's sidecar under different names: Lightroom Classic, Capture One
and Photo Mechanic under `IMG_1.xmp` (the base name), darktable and digiKam under
`IMG_1.CR2.xmp` (the file's name). A project's `Handoff` options say which names its
decisions are written to (both, by default), how a pick reaches tools with no pick flag
(`media.xmp`'s `picks_as`), and whether they also go into the JPEG and DNG files
themselves (what Lightroom reads for those).

Each sidecar is a row of `photo_sidecars`: where it is now, and the name it has in the
folder. Sidecars go to the project's trash with the files they describe (a file's own
`IMG_1.CR2.xmp` with it, the rest when the photo has no file left) and come back with
them on restore.

One module, though long: naming, moving with the trash and writing decisions are one
set of rules over the same rows, each a section here; apart, they would reach into each
other's helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from enlarger import errors
from enlarger.db.engine import hold_briefly
from enlarger.db.schema import images, photo_files, photo_sidecars, photos
from enlarger.db.types import db_now
from enlarger.library import edits, image_records, ingest, lookups
from enlarger.library.library import Library
from enlarger.library.photos import (
    basename_of,
    has_photo,
    numbered_names,
    photo_for,
    sidecar_basename,
)
from enlarger.media.embed import EMBEDDABLE, EmbedError, embed_xmp, embedded_xmp
from enlarger.media.xmp import (
    PICK,
    PICKS_AS,
    PICKS_AS_RATING,
    UNFLAGGED,
    Decisions,
    XmpError,
    needs_writing,
    pick_unsaid,
    read_decisions,
    renamed_source,
    write_decisions,
)
from enlarger.storage import StorageError

SIDECAR_SUFFIX = ".xmp"  # carried along with their photo, never decoded as images
# a time read back from SQLite's epoch seconds is off by up to a microsecond
TIME_GRAIN = timedelta(milliseconds=1)
BOTH, BASENAME, FILENAME = "both", "basename", "filename"
NAMINGS = (BOTH, BASENAME, FILENAME)


def is_sidecar(name: str) -> bool:
    return name.lower().endswith(SIDECAR_SUFFIX)


@dataclass(frozen=True)
class Handoff:
    """How a project's decisions are written for other tools (its `options` column, in
    the API's camelCase)."""

    picks_as: str = PICKS_AS_RATING  # media.xmp.PICKS_AS: "rating", "none" or a label
    sidecar_names: str = BOTH  # IMG_1.xmp and IMG_1.CR2.xmp; or only one of them
    embed_xmp: bool = False  # also into JPEG and DNG originals (their bytes change)

    def __post_init__(self) -> None:
        if self.picks_as not in PICKS_AS:
            raise ValueError(f"picksAs must be one of {', '.join(PICKS_AS)}")
        if self.sidecar_names not in NAMINGS:
            raise ValueError(f"sidecarNames must be one of {', '.join(NAMINGS)}")

    @classmethod
    def of(cls, options: dict[str, Any] | None) -> Handoff:
        given = options or {}
        defaults = cls()
        return cls(
            given.get("picksAs", defaults.picks_as),
            given.get("sidecarNames", defaults.sidecar_names),
            bool(given.get("embedXmp", defaults.embed_xmp)),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "picksAs": self.picks_as,
            "sidecarNames": self.sidecar_names,
            "embedXmp": self.embed_xmp,
        }

    def names(self, basename: str, filenames: Iterable[str]) -> list[str]:
        """The sidecar names a photo's decisions are written to."""
        found = [] if self.sidecar_names == FILENAME else [basename + SIDECAR_SUFFIX]
        if self.sidecar_names != BASENAME:
            found += [name + SIDECAR_SUFFIX for name in filenames]
        return found


def decisions_in(packet: bytes) -> dict[str, Any]:
    """The photo columns a sidecar's decisions set (none when it records none): the
    sidecar is what the user's editor last said, so it wins over the files' own XMP. A
    sidecar silent on picks (Lightroom's) leaves a pick a pick."""
    decisions = read_decisions(packet)
    if decisions is None:
        return {}
    values = asdict(decisions)
    if decisions.flag == UNFLAGGED and pick_unsaid(packet):
        values["flag"] = sa.case((photos.c.flag == PICK, PICK), else_=UNFLAGGED)
    return values


def folder_key(folder: str, name: str) -> str:
    return f"projects/{folder}/{name}"


def live_names(conn: sa.Connection, photo_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each photo's sidecars in the folder, by name."""
    ids = list(photo_ids)
    found: dict[int, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        query = (
            sa.select(photo_sidecars.c.photo_id, photo_sidecars.c.name)
            .where(
                photo_sidecars.c.photo_id.in_(ids[start : start + 500]),
                photo_sidecars.c.trashed_at.is_(None),
            )
            .order_by(photo_sidecars.c.name)
        )
        for row in conn.execute(query):
            found[row.photo_id].append(row.name)
    return found


def attach(conn: sa.Connection, photo_id: int, key: str, data: bytes) -> None:
    """Record the sidecar at `key` (in the folder), whose bytes are `data`, as the
    photo's."""
    conn.execute(
        photo_sidecars.insert().values(
            key=key,
            photo_id=photo_id,
            name=key.rsplit("/", 1)[-1],
            created_at=db_now(),
            checksum=checksum_of(data),
            seen_at=db_now(),
        )
    )


def checksum_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seen(conn: sa.Connection, key: str, data: bytes) -> None:
    """Enlarger has read or written these bytes of the sidecar at `key`."""
    conn.execute(
        photo_sidecars.update()
        .where(photo_sidecars.c.key == key)
        .values(checksum=checksum_of(data), seen_at=db_now())
    )


def holder(conn: sa.Connection, key: str) -> int | None:
    """The photo whose sidecar lies at `key`, or is on its way there, if any."""
    query = sa.select(photo_sidecars.c.photo_id).where(
        sa.or_(photo_sidecars.c.key == key, photo_sidecars.c.moving_to == key)
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def forget(conn: sa.Connection, key: str) -> None:
    conn.execute(photo_sidecars.delete().where(photo_sidecars.c.key == key))


# ---- arriving ------------------------------------------------------------------------------


def described(name: str, filenames: Iterable[str]) -> str | None:
    """The file of `filenames` a sidecar describes: `IMG_1.CR2.xmp` the file IMG_1.CR2,
    `IMG_1.xmp` a file whose base name is IMG_1 (the first, by name)."""
    stem = name[: -len(SIDECAR_SUFFIX)] if is_sidecar(name) else name
    candidates = sorted(filenames)
    exact = [f for f in candidates if f.casefold() == stem.casefold()]
    by_base = [f for f in candidates if basename_of(f).casefold() == stem.casefold()]
    return (exact or by_base or [None])[0]


def renamed(name: str, given: str, final: str) -> str:
    """A sidecar's name once the file it describes, sent as `given`, is named `final` in
    the folder (`IMG_5002.xmp` of IMG_5002.JPG stored as IMG_5002-2.JPG: IMG_5002-2.xmp)."""
    for old, new in ((given, final), (basename_of(given), basename_of(final))):
        if name.casefold().startswith(old.casefold() + "."):
            return new + name[len(old) :]
    return name


def following(data: bytes, given: str, final: str) -> bytes:
    """A sidecar's bytes once the file it describes, sent as `given`, is named `final`:
    darktable's `xmpMM:DerivedFrom` names the new name."""
    return renamed_source(data, given, final) if given != final else data


def store(
    library: Library, project: sa.Row[Any], name: str, data: bytes, basename: str | None = None
) -> tuple[str, str]:
    """Put an arriving sidecar next to its photo's files (the photo of `basename`, else
    the one its name says), and the photo takes its decisions. It replaces the photo's
    own sidecar of that name (the old one goes to the trash; the same bytes again change
    nothing) but never another file: a name that is taken gets the next number, as
    originals do. A new name is claimed under the project's lock in one short
    transaction and the file written with none open. Returns the photo's base name and
    the name the sidecar got."""
    skip: set[str] = set()
    while True:
        with library.engine.begin() as conn:
            hold_briefly(conn)  # every upload into the project waits on this lock
            image_records.lock_project(conn, project.id)
            basename = basename or sidecar_basename(name, has_photo(conn, project.id))
            photo_id = photo_for(conn, project.id, basename)
            key = _free_key(conn, project.folder, name, photo_id, skip)
            replacing = holder(conn, key) == photo_id
            if not replacing:
                attach(conn, photo_id, key, data)
        if replacing or not library.blobs.exists(key):
            break
        with library.engine.begin() as conn:  # a file put there by hand: never overwritten
            forget(conn, key)
        skip.add(key)
    stored_as = key.rsplit("/", 1)[-1]
    if replacing:
        old = _read(library, key)
        if old == data:
            return basename, stored_as
        if old is not None:
            with contextlib.suppress(FileNotFoundError):  # another arrival took it there
                library.blobs.move(key, edits.free_trash_key(library, project.folder, name))
    try:
        library.blobs.put_bytes(key, data)
    except BaseException:
        if not replacing:
            with library.engine.begin() as conn:
                forget(conn, key)  # the claim made for it, given up
        raise
    with library.engine.begin() as conn:
        if replacing:
            seen(conn, key, data)
        conn.execute(
            photos.update()
            .where(photos.c.id == photo_id)
            .values(updated_at=db_now(), **decisions_in(data))
        )
    return basename, stored_as


def _free_key(conn: sa.Connection, folder: str, name: str, photo_id: int, skip: set[str]) -> str:
    """The first of `name`, `name-2`… that is the photo's own sidecar or no one's (nor an
    image's, or an upload's on its way), leaving out `skip` (files put there by hand).
    Database reads only: the caller holds the project's lock."""
    for candidate in numbered_names(name):
        key = folder_key(folder, candidate)
        if key in skip:
            continue
        held_by = holder(conn, key)
        if held_by == photo_id:
            return key
        original = sa.select(images.c.id).where(
            sa.or_(images.c.original_key == key, images.c.landing_key == key)
        )
        if held_by is None and conn.execute(original).first() is None:
            return key
    raise errors.Conflict(f"no free name like {name!r} in {folder!r}")


def adopt(library: Library, image_id: str, staged: list[dict[str, str]]) -> list[str]:
    """Sidecars that waited with an upload (`ingest.stage_sidecar`) join its photo now
    that it is stored, renamed as it was; returns their names. Safe to run again: a
    sidecar adopted already is gone from where it waited."""
    row = image_records.get_image_row(library, image_id)
    if row.original_key is None:
        return []
    project = lookups.project_row(library, row.project_id)
    final = row.original_filename or ""
    names = []
    for entry in staged:
        data = ingest.staged_sidecar_bytes(library, entry)
        if data is not None:
            name = renamed(entry["name"], entry["describes"], final)
            data = following(data, entry["describes"], final)
            names.append(store(library, project, name, data, basename_of(final))[1])
            ingest.discard_staged_sidecar(library, entry)
    return names


# ---- writing decisions --------------------------------------------------------------------


@dataclass(frozen=True)
class WriteBack:
    written: list[str]  # sidecar names written
    refused: dict[str, str]  # sidecar name → why it was left as it is (not XMP)
    decisions: Decisions  # the photo's decisions as written: a sidecar edited since wins


def write_back(
    library: Library,
    project: sa.Row[Any],
    photo: sa.Row[Any],
    filenames: list[str],
    handoff: Handoff,
    said: bool = False,
    dry_run: bool = False,
) -> WriteBack:
    """Write the photo's decisions into each sidecar that says otherwise: those it has,
    and (when there is anything to say, or its files' own XMP said something: `said`)
    the names `handoff` gives that it lacks. A file already at such a name that is no
    one's sidecar becomes this photo's; one that is not XMP is never overwritten. A
    sidecar edited elsewhere since enlarger last saw it (darktable, Lightroom) after the
    photo's decisions last changed here is read first: its decisions are the photo's.
    A `dry_run` writes and reads nothing back: the sidecars that would be written with
    the decisions as the database has them now (what a commit's dry run shows)."""
    if dry_run:
        decisions = Decisions(photo.flag, photo.rating, photo.label)
    else:
        decisions = edited_elsewhere(library, photo)
    with library.engine.connect() as conn:
        own = {
            row.name: row.key
            for row in conn.execute(
                sa.select(photo_sidecars.c.name, photo_sidecars.c.key).where(
                    photo_sidecars.c.photo_id == photo.id, photo_sidecars.c.trashed_at.is_(None)
                )
            )
        }
    folded = {name.casefold() for name in own}  # IMG_1.XMP is IMG_1.xmp on a Mac's disk
    wanted = handoff.names(photo.basename, filenames) if decisions != Decisions() or said else []
    wanted = [name for name in wanted if name in own or name.casefold() not in folded]
    written: list[str] = []
    refused: dict[str, str] = {}
    for name in dict.fromkeys([*own, *wanted]):
        key = own.get(name, folder_key(project.folder, name))
        try:
            packet = _read(library, key)
            if not needs_writing(packet, decisions, handoff.picks_as):
                continue
            updated = write_decisions(packet, decisions, handoff.picks_as)
        except (XmpError, StorageError) as error:
            refused[name] = str(error)
            continue
        if dry_run:
            written.append(name)
            continue
        mine = key in own.values()
        if not mine:
            claimed = _claim(library, project.id, photo.id, key, updated)
            if claimed is None:
                continue  # another photo's sidecar has this name
            mine = claimed == "held already"
        try:  # the name is this photo's: written with no lock held
            library.blobs.put_bytes(key, updated)
        except StorageError as error:  # a link out of the library, say: never written through
            if not mine:
                with library.engine.begin() as conn:
                    forget(conn, key)  # the claim made for it, given up
            refused[name] = str(error)
            continue
        if mine:
            with library.engine.begin() as conn:
                seen(conn, key, updated)
        written.append(name)
    return WriteBack(written, refused, decisions)


def _claim(
    library: Library, project_id: int, photo_id: int, key: str, data: bytes
) -> Literal["claimed", "held already"] | None:
    """Make `key` this photo's sidecar, recorded as holding `data`, in one short
    transaction under the project's lock (the file is written after, with none open);
    None when it is another photo's."""
    with library.engine.begin() as conn:
        hold_briefly(conn)  # every upload into the project waits on this lock
        image_records.lock_project(conn, project_id)
        taken_by = holder(conn, key)
        if taken_by is None:
            attach(conn, photo_id, key, data)
            return "claimed"
    return "held already" if taken_by == photo_id else None


def edited_file(library: Library, image_id: str, modified_at: datetime) -> None:
    """A file changed in place (Lightroom saving its metadata into a JPEG, say): the
    decisions its own XMP records now are its photo's, when the change is newer than the
    photo's last decision here."""
    row = image_records.get_image_row(library, image_id)
    recorded = {k: v for k, v in (row.exif or {}).items() if k in ("flag", "rating", "label")}
    if "flag" not in recorded:
        return  # its XMP records no decision
    found = Decisions(recorded["flag"], recorded.get("rating") or 0, recorded.get("label"))
    with library.engine.begin() as conn:
        conn.execute(
            photos.update()
            .where(
                photos.c.id
                == sa.select(photo_files.c.photo_id)
                .where(photo_files.c.image_id == image_id)
                .scalar_subquery(),
                photos.c.updated_at < modified_at,
            )
            .values(updated_at=db_now(), **asdict(found))
        )


def edited_elsewhere(library: Library, photo: sa.Row[Any]) -> Decisions:
    """The photo's decisions, after reading those of its sidecars edited since enlarger
    last read or wrote them: one edited after the photo's decisions last changed here
    says what the user decided last, and the photo takes it; an older edit is recorded as
    seen (the photo's newer decisions will be written over it)."""
    decisions = Decisions(photo.flag, photo.rating, photo.label)
    stamp = photo.updated_at  # taken from a sidecar only if no decision came since
    with library.engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(
                    photo_sidecars.c.key, photo_sidecars.c.checksum, photo_sidecars.c.seen_at
                ).where(
                    photo_sidecars.c.photo_id == photo.id, photo_sidecars.c.trashed_at.is_(None)
                )
            )
        )
    for row in rows:
        try:
            data = _read(library, row.key)
            info = library.blobs.info(row.key)
        except StorageError:
            continue  # not readable where it is (a link out of the library): refused later
        if data is None or info is None or checksum_of(data) == row.checksum:
            continue
        found = read_decisions(data)
        if found is not None and found.flag == UNFLAGGED and decisions.flag == PICK:
            found = replace(found, flag=PICK) if pick_unsaid(data) else found  # Lightroom's
        # edited after enlarger last saw it: newer than the decision when that came
        # before, else when the file's time says so (S3 keeps whole seconds)
        newer = row.checksum is not None and (
            photo.updated_at <= row.seen_at or info.modified_at > photo.updated_at
        )
        with library.engine.begin() as conn:
            seen(conn, row.key, data)
            if newer and found is not None and found != decisions:
                conn.execute(  # unless a decision was made here since: that is newer
                    photos.update()
                    .where(photos.c.id == photo.id, photos.c.updated_at <= stamp + TIME_GRAIN)
                    .values(updated_at=db_now(), **asdict(found))
                )
                decisions, stamp = _decisions_now(conn, photo.id)
    return decisions


def _decisions_now(conn: sa.Connection, photo_id: int) -> tuple[Decisions, datetime]:
    """The photo's decisions as the database has them, and when they last changed."""
    row = conn.execute(
        sa.select(photos.c.flag, photos.c.rating, photos.c.label, photos.c.updated_at).where(
            photos.c.id == photo_id
        )
    ).one()
    return Decisions(row.flag, row.rating, row.label), row.updated_at


def embed(
    library: Library,
    files: list[sa.Row[Any]],
    decisions: Decisions,
    handoff: Handoff,
    refused: dict[str, str],
) -> list[str]:
    """Write the decisions into those of the files that are JPEG or DNG, where their own
    XMP says otherwise (the tools that read nothing else for them: Lightroom, Capture
    One); a photo with no decision leaves a file that records none untouched. The image
    data stays byte for byte; the file's new checksum is recorded, and the one it
    arrived with kept, so the card's file is still recognised. A file that cannot take
    it is named in `refused`. Returns the files written."""
    written = []
    for file in files:
        if file.format not in EMBEDDABLE:
            continue
        row = image_records.get_image_row(library, file.id)
        if row.original_key is None:
            continue  # not stored yet: the next commit sees to it
        try:
            data = _read(library, row.original_key)
        except StorageError as error:
            refused[file.original_filename] = str(error)
            continue
        if data is None:
            continue
        if checksum_of(data) != row.checksum:  # Lightroom saved into it since, say
            refused[file.original_filename] = (
                "changed elsewhere since enlarger stored it: manifest_check reads it first"
            )
            continue
        try:
            packet = embedded_xmp(data, file.format)
            if decisions == Decisions() and (packet is None or read_decisions(packet) is None):
                continue  # nothing to say, and nothing said: the original stays as it is
            if not needs_writing(packet, decisions, handoff.picks_as):
                continue
            updated = embed_xmp(
                data, file.format, write_decisions(packet, decisions, handoff.picks_as)
            )
        except (EmbedError, XmpError) as error:
            refused[file.original_filename] = str(error)
            continue
        edits.rewrite_original(library, row, updated)
        written.append(file.original_filename)
    return written


def _read(library: Library, key: str) -> bytes | None:
    if not library.blobs.exists(key):
        return None
    with library.blobs.local_copy(key) as path:
        return path.read_bytes()


# ---- into the trash and back --------------------------------------------------------------


def send_to_trash(
    library: Library, folder: str, photo_id: int, names: set[str] | None = None
) -> None:
    """Move the photo's sidecars (those of `names`, or all) to the project's trash,
    remembering the name each had."""
    with library.engine.connect() as conn:
        project_id = _project_of(conn, photo_id)
        rows = list(
            conn.execute(
                sa.select(photo_sidecars.c.key, photo_sidecars.c.name).where(
                    photo_sidecars.c.photo_id == photo_id, photo_sidecars.c.trashed_at.is_(None)
                )
            )
        )
    for row in rows:
        if names is not None and row.name not in names:
            continue
        if not library.blobs.exists(row.key):
            with library.engine.begin() as conn:
                forget(conn, row.key)
            continue
        trash_key = edits.free_trash_key(library, folder, row.name)
        _move(library, project_id, row.key, trash_key)


def _project_of(conn: sa.Connection, photo_id: int) -> int:
    return int(
        conn.execute(sa.select(photos.c.project_id).where(photos.c.id == photo_id)).scalar_one()
    )


def _move(library: Library, project_id: int, key: str, to: str) -> bool:
    """Move the sidecar at `key` to `to` (into the trash, or back): `to` is claimed
    (`moving_to`) under the project's lock in one short transaction, the file moved with
    none open and the move recorded in another. False, and nothing done, when `to` is
    another sidecar's or the sidecar is on its way somewhere already."""
    with library.engine.begin() as conn:
        hold_briefly(conn)  # every upload into the project waits on this lock
        image_records.lock_project(conn, project_id)
        if holder(conn, to) is not None:
            return False
        claimed = conn.execute(
            photo_sidecars.update()
            .where(photo_sidecars.c.key == key, photo_sidecars.c.moving_to.is_(None))
            .values(moving_to=to, moving_since=db_now())
        ).rowcount
    if claimed:
        finish_move(library, key, to)
    return bool(claimed)


def finish_move(library: Library, key: str, to: str) -> None:
    """Move the sidecar's file from `key` to where it is claimed to go, unless a run that
    died did it already, and record it there; a move that fails gives the claim up."""
    this_sidecar = photo_sidecars.update().where(
        photo_sidecars.c.key == key, photo_sidecars.c.moving_to == to
    )
    try:
        if library.blobs.exists(key) or not library.blobs.exists(to):
            library.blobs.move(key, to)
    except BaseException:
        with library.engine.begin() as conn:
            conn.execute(this_sidecar.values(moving_to=None, moving_since=None))
        raise
    trashed_at = db_now() if edits.in_trash(to) else None
    with library.engine.begin() as conn:
        conn.execute(
            this_sidecar.values(key=to, trashed_at=trashed_at, moving_to=None, moving_since=None)
        )


def bring_back(
    library: Library, folder: str, photo_id: int, restored: list[str], filenames: list[str]
) -> list[str]:
    """Sidecars that went to the trash with files now restored: each restored file's own
    (`IMG_1.CR2.xmp`) and the photo's (`IMG_1.xmp`), where their names are free; returns
    the names brought back."""
    own = {name + SIDECAR_SUFFIX for name in restored}
    of_others = {name + SIDECAR_SUFFIX for name in filenames} - own
    with library.engine.connect() as conn:
        project_id = _project_of(conn, photo_id)
        rows = list(
            conn.execute(
                sa.select(photo_sidecars.c.key, photo_sidecars.c.name)
                .where(
                    photo_sidecars.c.photo_id == photo_id,
                    photo_sidecars.c.trashed_at.is_not(None),
                )
                .order_by(photo_sidecars.c.trashed_at.desc())
            )
        )
    back: list[str] = []
    for row in rows:
        if row.name in of_others or row.name in back:
            continue
        key = folder_key(folder, row.name)
        if library.blobs.exists(key):
            continue  # the name is taken again: it stays in the trash
        if not library.blobs.exists(row.key):
            with library.engine.begin() as conn:
                forget(conn, row.key)
            continue
        if _move(library, project_id, row.key, key):
            back.append(row.name)
    return back
