"""User-facing errors.

Every problem a user can cause (bad input, missing file, missing weights, bad config) raises a
subclass of :class:`BrainprobeError` with a one-line message that says what is wrong, where,
and what to do. The CLI prints ``error: <message>`` and exits with code 2, without a traceback.
"""

from __future__ import annotations


class BrainprobeError(Exception):
    """Base class of errors caused by user input; the message is one line, shown as is."""

    exit_code: int = 2


class ConfigError(BrainprobeError, ValueError):
    """A config file or option is invalid (names the key and the file)."""


class DataError(BrainprobeError, ValueError):
    """A data file is missing, unreadable or inconsistent (names the file and the problem)."""


class WeightsError(BrainprobeError, FileNotFoundError):
    """Weights are missing or fail verification (names the model, file and fetch command)."""


class ModelError(BrainprobeError, ValueError):
    """Unknown model or layer name (lists the valid names)."""


class OutputError(BrainprobeError, OSError):
    """Reading or writing a file failed in the operating system (disk full, file too large,
    read-only or missing folder, no permission); names the path and what to do."""

    @classmethod
    def from_os_error(cls, err: OSError, path: object = None) -> "OutputError":
        """One-line error from an ``OSError`` raised while reading or writing a file.

        Parameters
        ----------
        err : OSError
            The operating system's error (``errno``, ``strerror``, ``filename`` are used when set).
        path : path-like, optional
            The file the caller was writing; named instead of ``err.filename`` (which may be a
            temporary beside it, or missing: ``write`` errors such as EFBIG / ENOSPC carry none).

        Returns
        -------
        OutputError
            Message ``"<path>: <strerror> (<ERRNO>); <what to do>"`` on one line.
        """
        import errno as _errno

        code = err.errno
        name = _errno.errorcode.get(code, "") if code is not None else ""
        what = err.strerror or " ".join(str(err).split()) or type(err).__name__
        filename = path if path is not None else err.filename
        where = f"{filename}: " if filename is not None else ""
        hints = {
            _errno.ENOSPC: "free disk space or write to another folder",
            _errno.EFBIG: "free disk space, raise the file-size limit (ulimit -f) or write to another folder",
            _errno.EDQUOT: "free space in your quota or write to another folder",
            _errno.EROFS: "write to a folder on a writable file system",
            _errno.EACCES: "check the folder's permissions or write to another folder",
            _errno.EPERM: "check the folder's permissions or write to another folder",
            _errno.ENOTDIR: "a parent of this path is a file, not a folder; choose another path",
            _errno.ENOENT: "check the path; create the folder first if it is an output",
        }
        hint = hints.get(code, "check the path, free disk space and permissions") if code is not None else (
            "check the path, free disk space and permissions"
        )
        tag = f" ({name})" if name else ""
        out = cls(" ".join(f"{where}{what}{tag}; {hint}".split()))
        out.errno, out.strerror, out.filename = code, what, filename
        return out

    def __str__(self) -> str:  # OSError would print "[Errno N] ..." once errno is set
        return str(self.args[0]) if self.args else ""
