"""``posix_spawn`` without the interpreter lock.

``os.posix_spawn`` holds the interpreter lock until the child has exec'd (CPython 3.11;
3.12 releases it around ``subprocess``'s vfork, not around ``os.posix_spawn``). That
wait is the child's pre-exec work and the kernel's exec, and on a busy machine also
the child's wait for a CPU: milliseconds in which no other thread of the control plane
runs Python — not the executor's watcher noticing an exit, not the API. Calling the C
library's ``posix_spawn`` through :mod:`ctypes` releases the lock for the call, as
ctypes does for every foreign call. The child shares the parent's memory until its exec
(a vfork), which is safe with other threads running: the C library gives it its own
stack, and it reads only the arguments below, which the caller keeps alive and does
not change.

Only what the executor uses is supported: file actions that open a path or ``dup2`` a
descriptor, a new session, signals reset to their defaults, a signal mask. Where the C
library lacks a function, :func:`posix_spawn` falls back to ``os.posix_spawn``.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

__all__ = ["FileAction", "posix_spawn"]

FileAction = tuple[int, int, str, int, int] | tuple[int, int, int]
"""``(os.POSIX_SPAWN_OPEN, fd, path, flags, mode)`` or ``(os.POSIX_SPAWN_DUP2, fd,
new_fd)``, as ``os.posix_spawn`` takes them."""

# <spawn.h> flags; glibc and musl agree on them.
_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
# Opaque C types, with room to spare: glibc's posix_spawnattr_t is 336 bytes,
# posix_spawn_file_actions_t 80 and sigset_t 128, on every 64-bit target.
_ATTR_SIZE = 1024
_ACTIONS_SIZE = 256
_SIGSET_SIZE = 256


class _Libc:
    """The C library's spawn functions, typed. Raises AttributeError when one is
    missing."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)

        def bind(name: str, *argtypes: Any) -> Callable[..., int]:
            function = getattr(libc, name)
            function.argtypes = argtypes
            function.restype = ctypes.c_int
            return cast(Callable[..., int], function)

        p, i, text = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        strings = ctypes.POINTER(ctypes.c_char_p)
        self.posix_spawn = bind("posix_spawn", ctypes.POINTER(i), text, p, p, strings, strings)
        self.posix_spawnattr_init = bind("posix_spawnattr_init", p)
        self.posix_spawnattr_setflags = bind("posix_spawnattr_setflags", p, ctypes.c_short)
        self.posix_spawnattr_setsigdefault = bind("posix_spawnattr_setsigdefault", p, p)
        self.posix_spawnattr_setsigmask = bind("posix_spawnattr_setsigmask", p, p)
        self.posix_spawn_file_actions_init = bind("posix_spawn_file_actions_init", p)
        self.posix_spawn_file_actions_destroy = bind("posix_spawn_file_actions_destroy", p)
        self.posix_spawn_file_actions_addopen = bind(
            "posix_spawn_file_actions_addopen", p, i, text, i, ctypes.c_uint
        )
        self.posix_spawn_file_actions_adddup2 = bind("posix_spawn_file_actions_adddup2", p, i, i)
        self.sigemptyset = bind("sigemptyset", p)
        self.sigaddset = bind("sigaddset", p, i)
        try:  # glibc 2.34 and later
            self.addclosefrom: Callable[..., int] | None = bind(
                "posix_spawn_file_actions_addclosefrom_np", p, i
            )
        except AttributeError:
            self.addclosefrom = None


def _load() -> _Libc | None:
    try:
        return _Libc()
    except (OSError, AttributeError):
        return None


_LIBC = _load()
_ATTRS: dict[tuple[bool, frozenset[int], frozenset[int] | None], ctypes.Array[ctypes.c_char]] = {}
"""Spawn attributes by (setsid, setsigdef, setsigmask): built once, read by every
spawn (concurrently too: posix_spawn only reads them). Never destroyed: there are a
handful, and glibc's hold no memory of their own."""


def posix_spawn(
    path: str,
    argv: Sequence[str],
    env: Mapping[bytes, bytes],
    *,
    file_actions: Sequence[FileAction] = (),
    setsid: bool = False,
    setsigdef: Collection[int] = (),
    setsigmask: Collection[int] | None = None,
    close_from: int | None = None,
) -> int:
    """Like ``os.posix_spawn`` (the arguments it names the same), with the interpreter
    lock released while the child is created; returns its pid. ``close_from``: every
    descriptor from that number up is closed in the child after the file actions, so
    that none this process inherited without close-on-exec (from the shell or the
    service manager that started it) reaches the child; where the C library cannot,
    they stay open. Raises OSError when it cannot be created, as ``os.posix_spawn``
    does."""
    if _LIBC is None:
        if setsigmask is None:
            return os.posix_spawn(
                path, list(argv), env, file_actions=file_actions, setsid=setsid, setsigdef=setsigdef
            )
        return os.posix_spawn(
            path,
            list(argv),
            env,
            file_actions=file_actions,
            setsid=setsid,
            setsigdef=setsigdef,
            setsigmask=setsigmask,
        )
    attr = _attributes(
        _LIBC, setsid, frozenset(setsigdef), None if setsigmask is None else frozenset(setsigmask)
    )
    c_argv = _strings([os.fsencode(arg) for arg in argv])
    c_env = _strings([key + b"=" + value for key, value in env.items()])
    actions = ctypes.create_string_buffer(_ACTIONS_SIZE)
    _check(_LIBC.posix_spawn_file_actions_init(actions))
    try:
        for action in file_actions:
            if action[0] == os.POSIX_SPAWN_OPEN and len(action) == 5:
                _, fd, name, flags, mode = action
                encoded = os.fsencode(name)
                _check(_LIBC.posix_spawn_file_actions_addopen(actions, fd, encoded, flags, mode))
            elif action[0] == os.POSIX_SPAWN_DUP2 and len(action) == 3:
                _check(_LIBC.posix_spawn_file_actions_adddup2(actions, action[1], action[2]))
            else:
                raise ValueError(f"unsupported file action {action!r}")
        if close_from is not None and _LIBC.addclosefrom is not None:
            _check(_LIBC.addclosefrom(actions, close_from))
        pid = ctypes.c_int()
        error = _LIBC.posix_spawn(
            ctypes.byref(pid), os.fsencode(path), actions, attr, c_argv, c_env
        )
    finally:
        _LIBC.posix_spawn_file_actions_destroy(actions)
    if error:
        raise OSError(error, os.strerror(error), path)
    return pid.value


def _attributes(
    libc: _Libc, setsid: bool, setsigdef: frozenset[int], setsigmask: frozenset[int] | None
) -> ctypes.Array[ctypes.c_char]:
    key = (setsid, setsigdef, setsigmask)
    attr = _ATTRS.get(key)
    if attr is not None:
        return attr
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    _check(libc.posix_spawnattr_init(attr))
    flags = _SETSID if setsid else 0
    if setsigdef:
        flags |= _SETSIGDEF
        _check(libc.posix_spawnattr_setsigdefault(attr, _sigset(libc, setsigdef)))
    if setsigmask is not None:
        flags |= _SETSIGMASK
        _check(libc.posix_spawnattr_setsigmask(attr, _sigset(libc, setsigmask)))
    _check(libc.posix_spawnattr_setflags(attr, flags))
    _ATTRS[key] = attr
    return attr


def _sigset(libc: _Libc, signals: Collection[int]) -> ctypes.Array[ctypes.c_char]:
    sigset = ctypes.create_string_buffer(_SIGSET_SIZE)
    _check(libc.sigemptyset(sigset))
    for signum in signals:
        _check(libc.sigaddset(sigset, int(signum)))
    return sigset


def _strings(items: list[bytes]) -> ctypes.Array[ctypes.c_char_p]:
    """A NULL-terminated ``char *[]`` (the bytes objects must outlive it)."""
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


def _check(result: int) -> None:
    """Raises OSError for a C library call that failed (sigaddset and friends return
    -1 and set errno; the posix_spawn family return the error number)."""
    if result == -1:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    if result:
        raise OSError(result, os.strerror(result))
