"""Makes a running process execute one system call of our choosing, from the outside, with ptrace
(x86-64): seize, interrupt (it sits in epoll_wait, right after a `syscall` instruction), point rip at
that instruction with new registers, single-step, read rax, put everything back, detach. The syscall
runs in the target's own context, so its seccomp filter judges it: the evidence the sandbox test needs
without a debug hook in the launcher."""
import ctypes
import os
import time
import signal

PTRACE_PEEKTEXT, PTRACE_CONT, PTRACE_GETREGS, PTRACE_SETREGS = 1, 7, 12, 13
PTRACE_SINGLESTEP, PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 9, 17, 0x4206, 0x4207
WALL = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class Regs(ctypes.Structure):  # struct user_regs_struct
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
        "fs_base gs_base ds es fs gs").split()]


def _pt(req, pid, addr=0, data=0):
    ctypes.set_errno(0)
    r = _libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data) if isinstance(data, int) else data)
    err = ctypes.get_errno()
    if r == -1 and err:
        raise OSError(err, "ptrace(%d): %s" % (req, os.strerror(err)))
    return r


def _wait(pid):
    _, status = os.waitpid(pid, WALL)
    if not os.WIFSTOPPED(status):
        raise OSError("target %d did not stop (status %#x)" % (pid, status))
    return os.WSTOPSIG(status)


def _stop_in_syscall(pid, tries=100):
    """Interrupts pid where it waits in a system call (right after a `syscall` instruction): a target that
    is busy (a sanitizer build, a loaded machine) is let run a moment and interrupted again."""
    for _ in range(tries):
        _pt(PTRACE_INTERRUPT, pid)
        _wait(pid)
        saved = Regs()
        _pt(PTRACE_GETREGS, pid, 0, ctypes.byref(saved))
        insn = _pt(PTRACE_PEEKTEXT, pid, saved.rip - 2) & 0xFFFF
        if insn == 0x050F:
            return saved
        _pt(PTRACE_CONT, pid, 0, 0)
        time.sleep(0.02)
    raise OSError("target %d never stopped after a syscall instruction (last %#x)" % (pid, insn))


def _step(pid, nr, args):
    """Interrupts pid, runs syscall nr(args) with one single-step; returns (saved regs, rax, stop signal).
    The stop signal is SIGTRAP for a call that ran; a seccomp filter that traps the call stops the
    target with SIGSYS first (SIGTRAP is then still pending)."""
    saved = _stop_in_syscall(pid)
    regs = Regs.from_buffer_copy(saved)
    regs.rip = saved.rip - 2
    regs.rax = nr
    regs.orig_rax = ctypes.c_ulonglong(-1).value  # no syscall-restart fix-up on this step
    for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
        setattr(regs, name, ctypes.c_ulonglong(value).value)
    _pt(PTRACE_SETREGS, pid, 0, ctypes.byref(regs))
    _pt(PTRACE_SINGLESTEP, pid)
    sig = _wait(pid)
    after = Regs()
    _pt(PTRACE_GETREGS, pid, 0, ctypes.byref(after))
    _pt(PTRACE_SETREGS, pid, 0, ctypes.byref(saved))
    return saved, ctypes.c_longlong(after.rax).value, sig


def inject_syscall(pid, nr, *args):
    """Runs syscall nr(args) inside pid; returns the raw result (a negative errno on failure)."""
    _pt(PTRACE_SEIZE, pid)
    try:
        return _step(pid, nr, args)[1]
    finally:
        try:
            _pt(PTRACE_DETACH, pid)
        except OSError:
            pass


def inject_syscall_signalled(pid, nr, *args):
    """Like inject_syscall, for a call the target's filter traps (SECCOMP_RET_TRAP): the SIGSYS it raises
    is handed on to the target as if no tracer were there, the step's own trap swallowed. Returns
    (raw result, the signal the call raised or 0)."""
    _pt(PTRACE_SEIZE, pid)
    try:
        _, r, sig = _step(pid, nr, args)
        if sig == signal.SIGTRAP:
            return r, 0
        _pt(PTRACE_CONT, pid, 0, sig)  # delivered: its handler frame is set up, then the pending trap
        _wait(pid)                     # stops us once more; detaching swallows it
        return r, sig
    finally:
        try:
            _pt(PTRACE_DETACH, pid)
        except OSError:
            pass
