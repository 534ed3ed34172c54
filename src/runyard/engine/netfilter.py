"""Keeping runs off this host's own services: a cgroup BPF program on ``connect``/``sendmsg``.

Landlock's TCP rules know ports, not addresses, and a network namespace would cut runs
off the outside too (or need NAT per host). A ``BPF_PROG_TYPE_CGROUP_SOCK_ADDR`` program
attached to the cgroup that holds every run's group refuses (EPERM) a connection or
datagram to a loopback, unspecified or local address of this host — its database,
Redis, the API — while every other destination stays reachable. Ports listed in
``allowed_ports`` (DNS by default: resolvers often listen on loopback) pass.

The program is a handful of instructions assembled here (no compiler, no libbpf).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

from runyard.engine.sandbox import _lib as libc

_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_SOCK_ADDR = 18
_ATTACH_INET4_CONNECT, _ATTACH_INET6_CONNECT = 10, 11
_ATTACH_UDP4_SENDMSG, _ATTACH_UDP6_SENDMSG = 14, 15
_F_ALLOW_MULTI = 2

# struct bpf_sock_addr offsets
_USER_IP4, _USER_IP6, _USER_PORT = 4, 8, 24


class _Asm:
    """Just enough eBPF: loads from the context, 32-bit compares, labels."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int, int]] = []  # (op, dst, src, off, imm)
        self.fixups: list[tuple[int, str]] = []
        self.labels: dict[str, int] = {}

    def ldx_w(self, dst: int, src: int, off: int) -> None:
        self.code.append((0x61, dst, src, off, 0))

    def and32(self, dst: int, imm: int) -> None:
        self.code.append((0x54, dst, 0, 0, _s32(imm)))

    def mov(self, dst: int, imm: int) -> None:
        self.code.append((0xB7, dst, 0, 0, imm))

    def mov_reg(self, dst: int, src: int) -> None:
        self.code.append((0xBF, dst, src, 0, 0))

    def jeq32(self, dst: int, imm: int, label: str) -> None:
        self.fixups.append((len(self.code), label))
        self.code.append((0x16, dst, 0, 0, _s32(imm)))

    def jne32(self, dst: int, imm: int, label: str) -> None:
        self.fixups.append((len(self.code), label))
        self.code.append((0x56, dst, 0, 0, _s32(imm)))

    def ja(self, label: str) -> None:
        self.fixups.append((len(self.code), label))
        self.code.append((0x05, 0, 0, 0, 0))

    def exit(self) -> None:
        self.code.append((0x95, 0, 0, 0, 0))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        code = list(self.code)
        for at, name in self.fixups:
            op, dst, src, _off, imm = code[at]
            code[at] = (op, dst, src, self.labels[name] - at - 1, imm)
        return b"".join(struct.pack("<BBhi", op, (src << 4) | dst, off, imm) for op, dst, src, off, imm in code)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _le32(raw: bytes) -> int:
    """Four bytes in network order, as the program's 32-bit load sees them."""
    return struct.unpack("<I", raw)[0]


def _port_word(port: int) -> int:
    return _le32(struct.pack("!H", port) + b"\0\0")


def local_addresses() -> tuple[list[bytes], list[bytes]]:
    """This host's own IPv4 and IPv6 addresses (packed), at the time of the call."""
    v4: list[bytes] = []
    v6: list[bytes] = []
    for _index, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                req = struct.pack("256s", name.encode()[:15])
                v4.append(fcntl.ioctl(sock.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR
            except OSError:
                pass
    try:
        with open("/proc/net/if_inet6") as fh:
            for line in fh:
                v6.append(bytes.fromhex(line.split()[0]))
    except OSError:
        pass
    return v4, v6


def program(family: int, allowed_ports: list[int], v4: list[bytes], v6: list[bytes]) -> bytes:
    asm = _Asm()
    asm.mov_reg(6, 1)
    asm.ldx_w(2, 6, _USER_PORT)
    for port in allowed_ports:
        asm.jeq32(2, _port_word(port), "allow")
    if family == socket.AF_INET:
        asm.ldx_w(2, 6, _USER_IP4)
        asm.mov_reg(3, 2)
        asm.and32(3, 0xFF)
        asm.jeq32(3, 127, "deny")  # 127.0.0.0/8
        asm.jeq32(3, 0, "deny")  # 0.0.0.0/8 reaches this host too
        for addr in v4:
            asm.jeq32(2, _le32(addr), "deny")
    else:
        mapped = b"\0" * 10 + b"\xff\xff"
        exact = [b"\0" * 15 + b"\x01", b"\0" * 16, *v6, *(mapped + a for a in v4)]
        for n, addr in enumerate(exact):
            nxt = f"next{n}"
            for word in range(4):
                asm.ldx_w(2, 6, _USER_IP6 + 4 * word)
                asm.jne32(2, _le32(addr[4 * word: 4 * word + 4]), nxt)
            asm.ja("deny")
            asm.label(nxt)
        for n, first in enumerate((127, 0)):  # ::ffff:127.0.0.0/104 and ::ffff:0.0.0.0/104
            nxt = f"mapped{n}"
            for word in range(3):
                asm.ldx_w(2, 6, _USER_IP6 + 4 * word)
                asm.jne32(2, _le32(mapped[4 * word: 4 * word + 4] if word < 2 else b"\0\0\xff\xff"), nxt)
            asm.ldx_w(2, 6, _USER_IP6 + 12)
            asm.and32(2, 0xFF)
            asm.jeq32(2, first, "deny")
            asm.label(nxt)
    asm.label("allow")
    asm.mov(0, 1)
    asm.exit()
    asm.label("deny")
    asm.mov(0, 0)
    asm.exit()
    return asm.assemble()


def _bpf(cmd: int, attr: bytes) -> int:
    import platform

    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise OSError(38, "BPF: unsupported architecture")
    buf = ctypes.create_string_buffer(attr, 128)
    result = libc().syscall(nr, cmd, buf, 128)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return int(result)


def _load(insns: bytes, attach_type: int) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack("<IIQQIIQII16sII", _PROG_TYPE_CGROUP_SOCK_ADDR, len(insns) // 8, ctypes.addressof(code),
                       ctypes.addressof(license_), 0, 0, 0, 0, 0, b"runyard_noloop", 0, attach_type)
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError:
        attr = attr[:16] + struct.pack("<IIQ", 1, len(log), ctypes.addressof(log)) + attr[32:]
        try:
            return _bpf(_BPF_PROG_LOAD, attr)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror}: {log.value.decode(errors='replace')[-300:]}") from None


def attach(cgroup_dir: str, allowed_ports: list[int]) -> None:
    """Attach the filter to ``cgroup_dir`` (a cgroup2 directory); it covers every group below."""
    v4, v6 = local_addresses()
    target = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for family, kinds in ((socket.AF_INET, (_ATTACH_INET4_CONNECT, _ATTACH_UDP4_SENDMSG)),
                              (socket.AF_INET6, (_ATTACH_INET6_CONNECT, _ATTACH_UDP6_SENDMSG))):
            insns = program(family, allowed_ports, v4, v6)
            for kind in kinds:
                prog = _load(insns, kind)
                try:
                    _bpf(_BPF_PROG_ATTACH, struct.pack("<IIII", target, prog, kind, _F_ALLOW_MULTI))
                finally:
                    os.close(prog)
    finally:
        os.close(target)
