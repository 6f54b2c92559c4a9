"""Locating and running the bundled ffmpeg binary.

Every child process is started in its own session: a Ctrl-C in the terminal is delivered to the whole foreground
process group, and an encoder killed together with us could not write its trailer. Kept in its own session it
sees EOF on stdin instead and finalises the file.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import IO

from diffusify.io.errors import MediaError

_ENCODER_LINE = re.compile(r"^\s*([VASD.][F.][S.][X.][B.][D.])\s+(\S+)\s")


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg.

    Returns:
        Absolute path of the executable.

    Raises:
        MediaError: the package or its binary is missing.
    """
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MediaError(
            "ffmpeg: the imageio-ffmpeg package is not installed (pip install imageio-ffmpeg)"
        ) from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - broken installation
        raise MediaError(f"ffmpeg: imageio-ffmpeg has no usable binary: {exc}") from exc


def file_arg(path: str | os.PathLike[str]) -> str:
    """A file name as ffmpeg must be given it: absolute, under the ``file:`` protocol.

    A relative name that starts with ``-`` would be read as an option, and one like ``concat:x.mkv`` as another
    protocol.

    Args:
        path: a file path.

    Returns:
        The argument for ffmpeg.
    """
    # the folder resolved as the system resolves it (abspath would collapse "lnk/.." by text, and name another file
    # than the one every check of ours looked at)
    text = os.fspath(path)
    folder, name = os.path.split(text)
    return "file:" + os.path.join(os.path.realpath(folder or "."), name)


def prepare_output(path: str | os.PathLike[str], *, folder: bool = False) -> None:
    """Create the folder an output goes into and make sure it can be written now: ffmpeg would only fail on it
    once the first frames arrive.

    Args:
        path: the output file, or with ``folder`` the folder of an image sequence.
        folder: ``path`` is a folder.

    Raises:
        MediaError: it cannot be written, with the system's reason.
    """
    target = os.fspath(path)
    try:
        os.makedirs(target if folder else os.path.dirname(os.path.abspath(target)), exist_ok=True)
        if folder or os.path.exists(target):
            if not os.access(target, os.W_OK):
                raise PermissionError(13, "Permission denied")
        else:
            with open(target, "xb"):
                pass
            os.unlink(target)
    except OSError as exc:
        raise MediaError(f"{target}: cannot write here ({exc.strerror or exc}); choose a folder you can write to") from None


@functools.cache
def available_encoders() -> frozenset[str]:
    """Names of the encoders the bundled ffmpeg was built with (``libx264``, ``ffv1``...).

    Returns:
        The encoder names, queried once per process.
    """
    proc = run_ffmpeg(["-encoders"], check=False)
    names: set[str] = set()
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        match = _ENCODER_LINE.match(line)
        # The legend at the top ("V..... = Video") has "=" where a name would be.
        if match and match.group(2) != "=":
            names.add(match.group(2))
    return frozenset(names)


@functools.cache
def encoder_failure(codec: str) -> str | None:
    """Why a hardware encoder cannot open on this machine, or None when it can.

    Being compiled in says nothing about the hardware (an NVENC encoder needs an NVIDIA GPU with encoder units
    and its driver library), so one tiny frame is encoded to nowhere, once per process.

    Args:
        codec: encoder name, e.g. ``h264_nvenc``.

    Returns:
        None, or ffmpeg's last log lines.
    """
    proc = run_ffmpeg(["-v", "error", "-f", "lavfi", "-i", "color=black:size=256x256:rate=25", "-frames:v", "1",
                       "-c:v", codec, "-f", "null", "-"], check=False)
    if proc.returncode == 0:
        return None
    log = proc.stderr.decode("utf-8", "replace")
    # the encoder's own lines say what is missing ("Cannot load libcuda.so.1", "No capable devices found");
    # what follows is ffmpeg unwinding
    own = [m.group(1) for m in re.finditer(rf"^\[{re.escape(codec)} @ [^\]]*\] (.+)$", log, re.M)]
    return "; ".join(own[:2]) if own else last_lines(log)


@functools.cache
def encoder_pix_fmts(codec: str) -> frozenset[str] | None:
    """Pixel formats an encoder of the bundled ffmpeg takes, None when ffmpeg does not list them.

    Args:
        codec: the encoder.

    Returns:
        The format names, queried once per encoder and process.
    """
    proc = run_ffmpeg(["-h", f"encoder={codec}"], check=False)
    match = re.search(r"Supported pixel formats:([^\n]*)", proc.stdout.decode("utf-8", "replace"))
    return frozenset(match.group(1).split()) if match else None


@functools.cache
def available_filters() -> frozenset[str]:
    """Names of the filters the bundled ffmpeg was built with (``scale``, ``zscale``...).

    Returns:
        The filter names, queried once per process.
    """
    proc = run_ffmpeg(["-filters"], check=False)
    names: set[str] = set()
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split()
        # Filter lines read " TSC name  V->V  description"; the legend above them has "=" in the flags' place.
        if len(parts) >= 3 and "->" in parts[2] and parts[1] != "=":
            names.add(parts[1])
    return frozenset(names)


def run_ffmpeg(
    args: Sequence[str], *, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg to completion, capturing stdout and stderr.

    Args:
        args: arguments after the executable; ``-hide_banner -nostdin`` are prepended.
        check: raise when ffmpeg exits with an error.
        timeout: seconds before the child is killed.

    Returns:
        The completed process; ``stderr`` holds ffmpeg's log.

    Raises:
        MediaError: ``check`` is set and ffmpeg failed, with the last lines of its log.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise MediaError(f"ffmpeg failed: {last_lines(proc.stderr.decode('utf-8', 'replace'))}")
    return proc


def last_lines(log: str, count: int = 3) -> str:
    """The last meaningful lines of an ffmpeg log joined on one line, for error messages.

    Args:
        log: ffmpeg's stderr.
        count: how many lines to keep.

    Returns:
        The lines joined with `` | ``, or ``no error output`` when the log is empty.
    """
    lines = [ln.strip() for ln in log.replace("\r", "\n").splitlines()]
    # Progress lines and the repeated-message notes carry no reason.
    lines = [ln for ln in lines if ln and not ln.startswith(("frame=", "size=", "Last message repeated"))]
    return " | ".join(lines[-count:]) if lines else "no error output"


PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Grow a frame pipe from the 64 KiB default to 1 MiB (Linux's unprivileged maximum).

    A 1080p frame is 6 MB: with the default each one costs about a hundred reads and writes, each a context
    switch between us and the child. Silently left alone where the system refuses or does not support it."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        pass


class FFmpegProcess:
    """An ffmpeg child in its own session whose log goes to an anonymous temporary file.

    A file rather than a pipe: nobody has to drain it (no deadlock), and when our process dies the child can
    still log while it finalises its output instead of failing on a broken pipe.

    Args:
        args: arguments after the executable; ``-hide_banner -nostdin`` are added unless stdin is a pipe.
        stdin_pipe: give the child a pipe on stdin (encoders fed with frames).
        stdout_pipe: give the child a pipe on stdout (decoders producing frames).
    """

    def __init__(self, args: Sequence[str], *, stdin_pipe: bool = False, stdout_pipe: bool = False) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()
        prefix = [ffmpeg_exe(), "-hide_banner"] + ([] if stdin_pipe else ["-nostdin"])
        self.args = [*prefix, *args]
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else subprocess.DEVNULL,
                stderr=self._log,
                bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise MediaError(f"ffmpeg: cannot start {self.args[0]}: {exc}") from exc
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                _widen_pipe(stream.fileno())

    def send(self, *parts: bytes | memoryview) -> None:
        """Write every byte of ``parts`` to the child's stdin, in order: a raw pipe may take a write only in part
        (a signal arriving mid-write), which would shift every later byte of the stream.

        Raises:
            OSError, ValueError: the pipe is broken or closed.
        """
        stdin = self.proc.stdin
        if stdin is None:
            raise ValueError("the child has no stdin pipe")
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                n = stdin.write(view)
                if not n:
                    raise OSError("the pipe took no bytes")
                view = view[n:]

    def log(self) -> str:
        """Everything the child has logged so far."""
        if self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def tail(self, count: int = 3) -> str:
        """The last meaningful log lines on one line (see :func:`last_lines`)."""
        return last_lines(self.log(), count)

    def finish(self, timeout: float | None = None) -> int:
        """Close our ends of the pipes and wait for the child to exit.

        Args:
            timeout: seconds to wait before killing it.

        Returns:
            The exit status.
        """
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    # The child already went away; its exit status tells why.
                    pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """Kill the child if it still runs and reap it, so no zombie is left."""
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:  # pragma: no cover - exited in between
                pass
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass
        self.proc.wait()

    def close_log(self) -> None:
        """Release the log file (its content is lost)."""
        self._log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid
