"""Runs inside the sandbox's child process (`python -I -B sandbox_guard.py LIMITS_JSON PROGRAM`):
confines itself, then runs PROGRAM. Standard library only: the child starts isolated (-I), without
llmkit on its path.

Order matters: limits first (they bind everything after), then a new network namespace where the
kernel allows one, then, when started as root, the switch to an unprivileged user (so the file
system's own permissions stop writes outside the working directory, and the process limit holds),
and last an audit hook (PEP 578) that refuses what the program should never do: sockets, new
processes, native code through ctypes, and writes outside its directory. A hook cannot be removed
once added, so the program runs under it.
"""

import json
import os
import resource
import sys

NOBODY = 65534
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
BLOCKED_EVENTS = ("socket.", "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "subprocess.Popen", "ctypes.", "os.kill", "os.killpg", "pty.spawn", "webbrowser.open")
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
               "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree")


def set_limits(limits: dict) -> None:
    memory = limits["memory_bytes"]
    for name, value in (("RLIMIT_AS", memory), ("RLIMIT_DATA", memory), ("RLIMIT_CPU", limits["cpu_seconds"]),
                        ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_NOFILE", 64), ("RLIMIT_CORE", 0),
                        ("RLIMIT_NPROC", limits["processes"])):
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError):
                pass  # a limit the platform does not let us set; the others and the hook still hold


def new_network_namespace() -> bool:
    """An empty network namespace (no interfaces but a down loopback): no network at all."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet, clone_newuser = 0x40000000, 0x10000000
        flags = clone_newnet if os.geteuid() == 0 else clone_newnet | clone_newuser
        return libc.unshare(flags) == 0
    except (OSError, AttributeError):
        return False


def others_can_read(directory: str) -> bool:
    """Whether an unprivileged user can traverse to and read `directory` (mode bits only)."""
    import stat

    path = os.path.realpath(directory)
    while True:
        mode = os.stat(path).st_mode
        if not mode & stat.S_IXOTH or (path == os.path.realpath(directory) and not mode & stat.S_IROTH):
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def drop_root(workdir: str) -> None:
    """Become `nobody` when running as root, unless the interpreter's own library is unreadable to
    it (a Python installed under /root): the program could not import the standard library, so the
    hook alone confines it then."""
    import sysconfig

    if os.geteuid() != 0 or not others_can_read(sysconfig.get_path("stdlib")):
        return
    for root, dirs, files in os.walk(workdir):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.chown(name, NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))  # as root it was not enforced; now it is


def inside(path, workdir: str) -> bool:
    if isinstance(path, int):
        return True  # an already-open descriptor
    real = os.path.realpath(os.fsdecode(path))
    return real == workdir or real.startswith(workdir + os.sep) or real == "/dev/null"


def install_hook(workdir: str) -> None:
    def hook(event: str, args: tuple) -> None:
        if event.startswith(BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args and args[0] is not None:
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes and not inside(args[0], workdir):
                raise PermissionError(f"sandbox: writing {args[0]!r} outside the working directory")
        elif event.startswith(PATH_EVENTS):
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            if any(not inside(p, workdir) for p in paths):
                raise PermissionError(f"sandbox: {event} outside the working directory")

    sys.addaudithook(hook)


def main() -> None:
    limits, program = json.loads(sys.argv[1]), sys.argv[2]
    workdir = os.path.realpath(os.path.dirname(program))
    os.chdir(workdir)
    set_limits(limits)
    new_network_namespace()
    drop_root(workdir)
    source = open(program).read()
    code = compile(source, program, "exec")
    install_hook(workdir)
    del sys.argv[1:]
    exec(code, {"__name__": "__main__", "__file__": program})


if __name__ == "__main__":
    main()
