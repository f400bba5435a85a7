"""Files on disk: publishing a finished file under its name (one way, for every command),
replacing a bundle atomically under a lock (custody appends), what a destination can hold, and
opening what may be evidence without touching its access time (``fs.noatime``).
"""

from evidencekit.fs import leftovers
from evidencekit.fs.commit import (
    begin,
    committing,
    hold,
    interruptible_now,
    interruptible_wait,
    made,
)
from evidencekit.fs.limits import (
    FAT32_LARGEST,
    describe_limit,
    file_system_type,
    largest_file,
    on_fuse,
)
from evidencekit.fs.publish import (
    NAME_REFUSED,
    NAME_RULE,
    NO_HARD_LINKS,
    CannotCreate,
    NameNotAllowed,
    Staged,
    publish,
    publish_folder,
    refuses_name,
    require_new,
    set_mode,
    staged,
    sync_folder,
    takes_new_files,
    umask_mode,
)
from evidencekit.fs.replace import NotEnoughSpace, locked, replace_end, still_names

__all__ = [
    "FAT32_LARGEST",
    "NAME_REFUSED",
    "NAME_RULE",
    "NO_HARD_LINKS",
    "CannotCreate",
    "NameNotAllowed",
    "NotEnoughSpace",
    "Staged",
    "begin",
    "committing",
    "describe_limit",
    "file_system_type",
    "hold",
    "interruptible_now",
    "interruptible_wait",
    "largest_file",
    "leftovers",
    "locked",
    "made",
    "on_fuse",
    "publish",
    "publish_folder",
    "refuses_name",
    "replace_end",
    "require_new",
    "set_mode",
    "staged",
    "still_names",
    "sync_folder",
    "takes_new_files",
    "umask_mode",
]
