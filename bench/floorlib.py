"""The floors' building blocks: the least work one task can cost.

Everything here is deliberately the cheapest *correct* way to do a step, so
that seqharness / floor is an honest measure of seqharness's own overhead:

* :func:`spawn_read`: spawn the agent on a PTY with pexpect, read the master
  fd with plain ``os.read`` until EOF (EIO on Linux), reap the child with a
  blocking wait, close.  pexpect's ``close()`` would sleep
  ``ptyproc.delayafterclose`` (0.1 s); the child is already reaped, so that
  delay is zeroed.
* :func:`atomic_write`: the crash-safe replace that state and ``tasks.md``
  need: temp file, write, fsync, rename, fsync of the folder.
* :class:`TmuxControl`: one persistent ``tmux -C`` control connection; one
  round trip per command (no client process per command).

Used by ``floor_loop.py`` (floor A), ``floor_plugin.py`` (floor P) and
``pty_floor.py`` (the streaming floor).  Only the standard library and pexpect.
"""

from __future__ import annotations

import os
import subprocess

import pexpect

SIGNAL = b"<promise>TASK_DONE</promise>"
READ_SIZE = 65536


def spawn_read(argv: list[str], sink=None) -> tuple[int | None, int, bool]:
    """Run *argv* on a PTY and read it to the end.

    Returns ``(exit status, bytes read, signal seen)``.  *sink*, if given, is
    called with every chunk (the streaming floor passes nothing: it only reads).
    The signal test looks at the last 4 KiB only, so it costs nothing.
    """
    child = pexpect.spawn(argv[0], argv[1:], echo=False, encoding=None)
    fd = child.child_fd
    total = 0
    last = b""
    while True:
        try:
            data = os.read(fd, READ_SIZE)
        except OSError:  # EIO: every slave fd is closed
            break
        if not data:
            break
        total += len(data)
        last = data[-4096:] if len(data) >= 4096 else (last + data)[-4096:]
        if sink is not None:
            sink(data)
    child.wait()
    child.ptyproc.delayafterclose = 0
    child.ptyproc.delayafterterminate = 0
    child.close()
    return child.exitstatus, total, SIGNAL in last


def atomic_write(path: str, data: bytes) -> None:
    """Replace *path* by *data*: temp file, fsync, rename, fsync the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class TmuxError(Exception):
    pass


class TmuxControl:
    """A persistent ``tmux -C`` control client on a private server (``-L``).

    The client is attached to its own session ``ctl`` and switches off pane
    output notifications (``refresh-client -f no-output``); task windows go to
    a separate detached session, so their output never travels over the
    control connection.  :meth:`command` sends one command line and waits for
    its ``%end`` / ``%error`` block.
    """

    def __init__(self, socket_name: str, session: str = "floor") -> None:
        self.socket_name = socket_name
        self.session = session
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.proc = subprocess.Popen(
            ["tmux", "-L", socket_name, "-f", "/dev/null", "-C",
             "new-session", "-s", "ctl", "-x", "200", "-y", "50"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            bufsize=0, env=env,
        )
        self._reply(ours=False)  # the reply to the client's own new-session
        self.command("refresh-client -f no-output")
        self.command(f"new-session -d -s {session} -x 200 -y 50")

    def _reply(self, ours: bool = True) -> list[bytes]:
        """The output of the next reply block to a command of this client.

        ``%begin TIME NUMBER FLAGS``: FLAGS 1 marks a command this client sent;
        blocks with FLAGS 0 (commands run by hooks, the client's own start-up
        command) are skipped unless *ours* is false.  Lines outside blocks are
        notifications (``%window-add`` ...) and are ignored.
        """
        out: list[bytes] = []
        inside = False
        mine = False
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise TmuxError("tmux control client went away")
            if line.startswith(b"%begin"):
                fields = line.split()
                inside, out = True, []
                mine = not ours or (len(fields) > 3 and fields[3] != b"0")
            elif inside and line.startswith((b"%end", b"%error")):
                inside = False
                if not mine:
                    continue
                if line.startswith(b"%error"):
                    raise TmuxError(b"".join(out).decode(errors="replace").strip())
                return out
            elif inside:
                out.append(line)

    def command(self, line: str) -> list[bytes]:
        self.proc.stdin.write(line.encode() + b"\n")
        return self._reply()

    def open_window(self, name: str, path: str) -> str:
        out = self.command(
            f"new-window -d -P -F '#{{window_id}}' -t ={self.session}: -n {name} "
            f"-- tail -c +1 -f --pid {os.getpid()} -- '{path}'")
        return out[0].strip().decode()

    def close_window(self, window_id: str) -> None:
        self.command(f"kill-window -t ={self.session}:{window_id}")

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
