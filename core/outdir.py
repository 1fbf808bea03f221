"""Output folders that colcomb owns: written aside, swapped in whole, never destroying user files.

Every command that writes a folder (``pack``, ``generate``, ``sweep``, ``report``, ``synthesize``)
goes through :class:`OutputFolder` (``train``, which must keep its checkpoints where ``--resume``
finds them, through :class:`RunFolder`: the same ownership rules and lock, written in place):

- it writes into a staging folder beside ``--out`` and swaps it in only when the command succeeds,
  so a failure leaves ``--out`` as it was and no staging folder behind;
- an existing ``--out`` is replaced only when colcomb can prove it wrote every file in it: the
  folder is empty, or its ownership record (:data:`RECORD`, written into every output folder) or an
  earlier colcomb manifest names every file. Anything else is refused with one line, and so is an
  ``--out`` that holds one of the command's inputs;
- the swap is atomic for readers: ``renameat2(RENAME_EXCHANGE)`` exchanges the two folders in one
  step where the kernel and file system offer it; elsewhere the old folder is renamed aside and the
  new one renamed in (a moment without ``--out``), and put back if the second rename fails;
- the folder gets the user's umask (not the 0700 of a temporary folder);
- a lock (``flock`` on a lock file beside ``--out``, removed afterwards) makes a second writer to
  the same ``--out`` fail at once instead of mixing two outputs; staging folders that a killed
  colcomb left beside ``--out`` are removed by the next command that takes the lock.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from glob import escape as glob_escape
from pathlib import Path

from colcomb.core import strict_json
from colcomb.core.errors import ColcombError

RECORD = ".colcomb-output.json"
RECORD_FORMAT = "colcomb-output"
_RENAME_EXCHANGE = 2


def user_mode(kind: str = "dir") -> int:
    """Permission bits a new folder (``dir``) or file (``file``) gets under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if kind == "dir" else 0o666) & ~mask


def _files_under(root: Path) -> list[str]:
    """Every non-folder entry under ``root`` (links not followed), as relative POSIX paths."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            out.append((rel / name).as_posix())
        for name in list(dirnames):  # os.walk lists links to folders as folders: they are entries
            if (Path(dirpath) / name).is_symlink():
                out.append((rel / name).as_posix())
                dirnames.remove(name)
    return sorted(out)


def _read_json(path: Path, limit: int = 64 << 20):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return strict_json.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def owned_files(folder: Path) -> set[str] | None:
    """The files colcomb records as its own in ``folder``, or None when it holds no record."""
    rec = _read_json(folder / RECORD)
    if isinstance(rec, dict) and rec.get("format") == RECORD_FORMAT and isinstance(rec.get("files"), list):
        owned = {f for f in rec["files"] if isinstance(f, str)} | {RECORD}
        for sub in rec.get("folders", []) if isinstance(rec.get("folders"), list) else []:
            # a folder colcomb writes whole (train's packed/, staged and swapped in with its
            # manifest): what its own record or manifest names is colcomb's, not whatever else lies
            # in it (a user's notes there are theirs); without either, all of it (as before)
            if isinstance(sub, str) and "/" not in sub and sub not in ("", ".", "..") \
                    and (folder / sub).is_dir() and not (folder / sub).is_symlink():
                inner = owned_files(folder / sub)
                owned |= {f"{sub}/{f}" for f in (inner if inner is not None else _files_under(folder / sub))}
        return owned
    man = _read_json(folder / "manifest.json")  # a manifest written before the ownership record
    if isinstance(man, dict) and man.get("format") == "colcomb-manifest" and isinstance(man.get("files"), dict):
        return {f for f in man["files"] if isinstance(f, str)} | {"manifest.json"}
    return None


def check_replaceable(out: Path, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse (ColcombError) unless replacing ``out`` destroys nothing colcomb did not write."""
    out_abs = Path(os.path.abspath(out))
    for inp in inputs:
        p = Path(os.path.abspath(inp))
        if p == out_abs or out_abs in p.parents:
            raise ColcombError(f"{out} holds the input {inp}; name another folder with --out")
        try:
            rp, ro = Path(inp).resolve(), out.resolve()
        except (OSError, RuntimeError):
            continue
        if rp == ro or ro in rp.parents:
            raise ColcombError(f"{out} holds the input {inp}; name another folder with --out")
    if not os.path.lexists(out):
        return
    if out.is_symlink():
        raise ColcombError(f"{out} is a symbolic link; colcomb replaces only real folders: name the folder itself")
    if not out.is_dir():
        raise ColcombError(f"{out} exists and is not a folder; name a new or empty folder with --out")
    present = _files_under(out)
    if not present:
        return
    owned = owned_files(out)
    if owned is None:
        raise ColcombError(
            f"{out} is not empty and colcomb did not write it (no {RECORD} or colcomb manifest.json "
            f"in it); name a new or empty folder with --out"
        )
    foreign = [f for f in present if f not in owned]
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ColcombError(
            f"{out} holds files colcomb did not write ({', '.join(foreign[:3])}{more}); move them "
            f"away or name another folder with --out"
        )


def _libc_renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _libc_renameat2()
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system cannot (then nothing moved)."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


class _Lock:
    """An exclusive, non-blocking flock on ``.<name>.colcomb-lock`` beside the output."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out.parent / f".{out.name}.colcomb-lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ColcombError(
                    f"another colcomb is writing {self.out} right now (it holds {self.path}); "
                    f"wait for it or name another folder with --out"
                ) from None
            try:  # the holder before us may have removed the file after we opened it: lock the live one
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)
        raise ColcombError(f"cannot lock {self.path}: it keeps changing; try again")

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def _lock_replaceable(out: Path, inputs: Iterable[Path], tidy=None) -> _Lock:
    """Take ``out``'s lock, run ``tidy()`` (removing what a killed colcomb left, which only the lock
    holder may do), and check again, now that no other colcomb can change it, that ``out`` may be
    replaced (the lock is released again when the check fails)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out)
    lock.acquire()
    try:
        if tidy is not None:
            tidy()
        check_replaceable(out, inputs)
    except BaseException:
        lock.release()
        raise
    return lock


class OutputFolder:
    """Stage a command's output folder and swap it into place on :meth:`commit`.

    Use as ``with OutputFolder(out, inputs=[...]) as stage: ...write into stage.path...;
    stage.commit()``. Leaving the block without commit (an error) removes the staging folder and
    leaves ``out`` untouched. ``commit`` writes the ownership record listing every staged file.
    """

    def __init__(self, out: str | os.PathLike, *, command: str, inputs: Iterable[str | os.PathLike] = ()):
        self.out = Path(out)
        self.command = command
        self.inputs = [Path(p) for p in inputs]
        self.path: Path | None = None
        self.committed = False
        self._lock: _Lock | None = None

    def __enter__(self) -> OutputFolder:
        out = self.out
        if out.name in ("", ".", ".."):
            out = self.out = Path(os.path.abspath(out))
        check_replaceable(out, self.inputs)
        try:
            self._lock = _lock_replaceable(out, self.inputs)
            self._remove_stale_staging()
            self.path = Path(tempfile.mkdtemp(prefix=f".{out.name}.colcomb-new.", dir=out.parent))
            os.chmod(self.path, user_mode("dir"))
        except OSError as exc:
            self._cleanup()
            raise ColcombError(f"cannot create {out}: {exc.strerror or exc}; name another folder with --out") from None
        except BaseException:
            self._cleanup()
            raise
        return self

    def commit(self) -> Path:
        """Record the staged files as colcomb's and swap the staged folder in for ``out``."""
        assert self.path is not None and not self.committed
        out, stage = self.out, self.path
        record = {"format": RECORD_FORMAT, "command": self.command,
                  "files": [f for f in _files_under(stage) if f != RECORD]}
        try:
            (stage / RECORD).write_text(json.dumps(record, indent=1) + "\n")
            check_replaceable(out, self.inputs)
            checked = set(_files_under(out)) if os.path.lexists(out) else set()
            if not os.path.lexists(out):
                os.rename(stage, out)
                self.path = None
            elif exchange(stage, out):
                # stage now holds the old folder: a file that appeared in it since the check above
                # is not provably colcomb's, so swap back and refuse rather than delete it
                if set(_files_under(stage)) - checked:
                    exchange(stage, out)
                    raise ColcombError(f"files appeared in {out} while colcomb was replacing it; nothing was changed")
                shutil.rmtree(stage, ignore_errors=True)
                self.path = None
            else:
                aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.colcomb-old.", dir=out.parent))
                try:
                    os.rename(out, aside / "old")
                    try:
                        os.rename(stage, out)
                    except OSError:
                        os.rename(aside / "old", out)
                        raise
                    self.path = None
                finally:
                    shutil.rmtree(aside, ignore_errors=True)
        except OSError as exc:
            raise ColcombError(f"cannot write {out}: {exc.strerror or exc}") from None
        finally:
            if self.path is None:
                self.committed = True
        return out

    def _remove_stale_staging(self) -> None:
        """Staging folders of this output left by a killed colcomb: only made under the lock we
        now hold, so none of them belongs to a running command."""
        for prefix in (f".{self.out.name}.colcomb-new.", f".{self.out.name}.colcomb-old."):
            for p in self.out.parent.glob(glob_escape(prefix) + "*"):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)

    def _cleanup(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __exit__(self, *exc) -> None:
        self._cleanup()


#: inside a run folder: the previous run's files while a new run replaces them
PREVIOUS = ".colcomb-previous"


class RunFolder:
    """An output folder that a long command writes in place, for ``train`` (whose checkpoint after
    every epoch must stay where ``--resume`` finds it, so it cannot be staged and swapped).

    ``out`` is locked for the whole run. A new run (``resume=False``) takes only a folder
    :func:`check_replaceable` allows and first removes the files colcomb wrote there; a resumed
    run needs the folder to be colcomb's already. The command names each file (or whole folder)
    with :meth:`record` *before* writing it, so the ownership record never claims a file the user
    put there and an interrupted run leaves a folder colcomb can prove it wrote; what a killed run
    left half-written (atomic-write temporaries, a staged ``packed`` folder, lock files) is
    removed when the next run takes the lock.
    """

    def __init__(self, out: str | os.PathLike, *, command: str, inputs: Iterable[str | os.PathLike] = (),
                 resume: bool = False):
        self.out = Path(os.path.abspath(out))
        self.command = command
        self.inputs = [Path(p) for p in inputs]
        self.resume = resume
        self._lock: _Lock | None = None
        self._files: set[str] = set()
        self._folders: set[str] = set()

    def __enter__(self) -> RunFolder:
        out = self.out
        try:
            self._lock = _lock_replaceable(out, self.inputs, tidy=self._tidy)
            rec = _read_json(out / RECORD) if self.resume else None
            if isinstance(rec, dict):
                self._files = {f for f in rec.get("files", []) if isinstance(f, str)}
                self._folders = {f for f in rec.get("folders", []) if isinstance(f, str)}
            if not self.resume and os.path.lexists(out):
                self._set_aside(out)
            out.mkdir(exist_ok=True)
            os.chmod(out, user_mode("dir"))
            self.record()
        except OSError as exc:
            self._release()
            raise ColcombError(f"cannot write {out}: {exc.strerror or exc}; name another folder with --out") from None
        except BaseException:
            self._release()
            raise
        return self

    def _set_aside(self, out: Path) -> None:
        """A new run keeps the previous run's files (all provably colcomb's) in ``PREVIOUS`` until
        it finishes, so that a run that fails or is killed leaves the user the last complete one.
        When ``PREVIOUS`` is already there, the last replacement never finished: the complete run
        is the one in it, and the files beside it (that unfinished run's) go."""
        prev = out / PREVIOUS
        keep = prev.is_dir() and not prev.is_symlink()
        rec = _read_json(out / RECORD)
        if isinstance(rec, dict) and out.is_dir():  # claim PREVIOUS before anything moves into it
            self._files = {f for f in rec.get("files", []) if isinstance(f, str)}
            self._folders = {f for f in rec.get("folders", []) if isinstance(f, str)} | {PREVIOUS}
            self.record()
        for name in sorted(_files_under(out), reverse=True):
            if name == RECORD or name.startswith(PREVIOUS + "/"):
                continue
            if keep:
                (out / name).unlink()
            else:
                (prev / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(out / name, prev / name)
        for sub in sorted((p for p in out.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
            if sub != prev and prev not in sub.parents:
                sub.rmdir()
        self._files = set()
        self._folders = {PREVIOUS} if prev.is_dir() else set()

    def _tidy(self) -> None:
        """Remove what a killed run of colcomb left in a folder colcomb owns: temporaries of atomic
        writes of its recorded files, the record's own temporary, staging folders and lock files
        of a folder written whole inside it."""
        out = self.out
        if not out.is_dir() or out.is_symlink() or not isinstance(_read_json(out / RECORD), dict):
            return
        rec = _read_json(out / RECORD)
        names = {f for f in rec.get("files", []) + rec.get("folders", []) if isinstance(f, str) and "/" not in f}
        for entry in out.iterdir():
            n = entry.name
            leftover = (n == f".{RECORD}.tmp" or n.endswith(".colcomb-lock")
                        or ".colcomb-new." in n or ".colcomb-old." in n
                        or any(n.startswith(f".{name}.") for name in names))
            if leftover and n.startswith("."):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def record(self, *names: str, folder: bool = False) -> None:
        """Claim ``names`` (files, or with ``folder`` whole folders) as this command's output and
        rewrite the ownership record; call it before writing them."""
        (self._folders if folder else self._files).update(names)
        record = {"format": RECORD_FORMAT, "command": self.command, "files": sorted(self._files),
                  "folders": sorted(self._folders)}
        tmp = self.out / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, self.out / RECORD)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __exit__(self, exc_type, *exc) -> None:
        try:
            prev = self.out / PREVIOUS
            if exc_type is None and self._lock is not None and prev.is_dir() and not prev.is_symlink():
                shutil.rmtree(prev)  # the new run is complete: it replaces the previous one now
                self._folders.discard(PREVIOUS)
                self.record()
        finally:
            self._release()
