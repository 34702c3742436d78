#!/usr/bin/env python3
"""Helpers for tests/apps/proxy/proxy.sh: upstreams and clients that check
what ra-proxy forwards.

  tool.py echo ADDR [--proxy-v2 LOG] [--source BYTES]
      upstream on ADDR (tcp:HOST:PORT, unix:PATH, vsock:CID:PORT; port 0 ok):
      echoes every connection until its EOF, then shuts its write side
      (half-close), or with --source sends BYTES of a pattern and closes.
      With --proxy-v2 each connection must start with a PROXY v2 header,
      decoded here (independently of raloop) and logged to LOG as
      "PROXY SRC DST". Prints "READY PORT" once listening.
  tool.py client ADDR BYTES     send BYTES random bytes, half-close, read the
                                echo to EOF: byte-exact or fail
  tool.py many ADDR N           N connections open at once, each echoes its
                                own message; every one must come back
  tool.py slow ADDR BYTES PID   read BYTES from a --source upstream slowly
                                at first; PID's VmRSS must not grow
  tool.py cap ADDR N            N connections work; the N+1th is closed at
                                once; after closing one, a new one works
  tool.py idle ADDR MS          an idle connection is closed by the proxy
                                within MS (and not much earlier than MS/2)
  tool.py whoami ADDR           connect, send a line, print our local
                                address "IP:PORT" and the echo
"""
import asyncio
import hashlib
import os
import socket
import sys
import threading
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_addr(a):
    if a.startswith("unix:"):
        return socket.AF_UNIX, a[5:]
    if a.startswith("vsock:"):
        cid, port = a[6:].split(":")
        return socket.AF_VSOCK, (int(cid), int(port))
    if a.startswith("tcp:"):
        a = a[4:]
    host, port = a.rsplit(":", 1)
    return socket.AF_INET, (host.strip("[]"), int(port))


def connect(a):
    fam, addr = parse_addr(a)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect(addr)
    return s


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed inside the PROXY header")
        b += c
    return b


def decode_v2(s):
    h = recv_exact(s, 16)
    if h[:12] != SIG or h[12] >> 4 != 2:
        raise ValueError("no PROXY v2 signature: %r" % h)
    n = int.from_bytes(h[14:16], "big")
    body = recv_exact(s, n)
    cmd, fam = h[12] & 15, h[13]
    if cmd == 0:
        return "LOCAL - -"
    if fam == 0x11:
        src = "%s:%d" % (socket.inet_ntop(socket.AF_INET, body[0:4]), int.from_bytes(body[8:10], "big"))
        dst = "%s:%d" % (socket.inet_ntop(socket.AF_INET, body[4:8]), int.from_bytes(body[10:12], "big"))
    elif fam == 0x21:
        src = "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, body[0:16]), int.from_bytes(body[32:34], "big"))
        dst = "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, body[16:32]), int.from_bytes(body[34:36], "big"))
    else:
        src = dst = "fam%02x" % fam
    return "PROXY %s %s" % (src, dst)


def pattern(n):
    block = hashlib.sha256(b"ra-proxy").digest() * 2048  # 64 KiB
    full, rest = divmod(n, len(block))
    return block, full, rest


def serve_conn(c, opts):
    try:
        if opts.get("proxy"):
            line = decode_v2(c)
            with open(opts["proxy"], "a") as f:
                f.write(line + "\n")
        if opts.get("source"):
            block, full, rest = pattern(opts["source"])
            for _ in range(full):
                c.sendall(block)
            c.sendall(block[:rest])
            c.shutdown(socket.SHUT_WR)
            while c.recv(65536):
                pass
            return
        while True:
            d = c.recv(262144)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)  # half-close: our FIN after theirs
    except (OSError, ValueError, EOFError) as e:
        sys.stderr.write("echo: %s\n" % e)
    finally:
        c.close()


def cmd_echo(argv):
    addr, opts, i = argv[0], {}, 1
    while i < len(argv):
        if argv[i] == "--proxy-v2":
            opts["proxy"] = argv[i + 1]
            i += 2
        elif argv[i] == "--source":
            opts["source"] = int(argv[i + 1])
            i += 2
        else:
            sys.exit("echo: unknown option " + argv[i])
    fam, a = parse_addr(addr)
    s = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_UNIX and os.path.exists(a):
        os.unlink(a)
    s.bind(a)
    s.listen(2048)
    port = s.getsockname()[1] if fam != socket.AF_UNIX else 0
    print("READY %d" % port, flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_conn, args=(c, opts), daemon=True).start()


def cmd_client(addr, nbytes):
    nbytes = int(nbytes)
    s = connect(addr)
    data = os.urandom(nbytes)
    got = []

    def reader():
        while True:
            d = s.recv(262144)
            if not d:
                break
            got.append(d)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # our FIN; the echo keeps flowing back
    t.join(60)
    back = b"".join(got)
    s.close()
    if back != data:
        sys.exit("client: %d bytes sent, %d back, equal prefix: %s" % (len(data), len(back), back == data[: len(back)]))
    print("ok %d bytes both ways, half-close honoured" % nbytes)


def cmd_many(addr, n):
    n = int(n)
    fam, a = parse_addr(addr)

    async def main():
        conns = []
        for i in range(n):  # all open at the same time
            if fam == socket.AF_UNIX:
                conns.append(await asyncio.open_unix_connection(a))
            else:
                conns.append(await asyncio.open_connection(a[0], a[1], limit=1 << 20))

        async def one(i, rw):
            r, w = rw
            msg = (b"%06d:" % i) * 170
            w.write(msg)
            await w.drain()
            w.write_eof()
            back = await asyncio.wait_for(r.read(), 30)
            w.close()
            return back == msg

        res = await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)), return_exceptions=True)
        return sum(1 for r in res if r is True), [r for r in res if r is not True][:3]

    ok, errs = asyncio.run(main())
    if ok != n:
        sys.exit("many: %d of %d came back (%s)" % (ok, n, errs))
    print("ok %d concurrent connections, none lost" % n)


def rss_kib(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cmd_slow(addr, nbytes, pid):
    nbytes = int(nbytes)
    s = connect(addr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    got = 0
    h = hashlib.sha256()
    before = rss_kib(pid)
    peak = before
    t0 = time.time()
    while got < nbytes:  # slowly for 2 s: 64 KiB every 20 ms (~3 MiB/s)
        slow = time.time() - t0 < 2.0
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
        h.update(d)
        if slow:
            time.sleep(0.02)
            peak = max(peak, rss_kib(pid))
    peak = max(peak, rss_kib(pid))
    s.close()
    block, full, rest = pattern(nbytes)
    w = hashlib.sha256()
    for _ in range(full):
        w.update(block)
    w.update(block[:rest])
    print("slow reader: %d bytes, VmRSS %d KiB before, %d KiB peak" % (got, before, peak))
    if got != nbytes or h.digest() != w.digest():
        sys.exit("slow: %d of %d bytes, or corrupted" % (got, nbytes))
    if peak - before > 4096:
        sys.exit("slow: ra-proxy grew by %d KiB" % (peak - before))
    print("ok RSS grew %d KiB while pushing %d MiB to a slow reader" % (peak - before, nbytes >> 20))


def works(s):
    s.settimeout(5)
    s.sendall(b"x")
    return s.recv(1) == b"x"


def cmd_cap(addr, n):
    n = int(n)
    held = [connect(addr) for _ in range(n)]
    for s in held:
        if not works(s):
            sys.exit("cap: a connection under the cap does not work")
    extra = connect(addr)  # the kernel accepts it; ra-proxy must close it at once
    extra.settimeout(2)
    t0 = time.time()
    try:
        extra.sendall(b"x")
        d = extra.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        d = b""
    except socket.timeout:
        sys.exit("cap: the connection over the cap was kept open (queued)")
    if d:
        sys.exit("cap: the connection over the cap was served")
    took = time.time() - t0
    held.pop().close()
    time.sleep(0.2)
    again = connect(addr)
    if not works(again):
        sys.exit("cap: no new connection after one closed")
    print("ok cap %d: the %dth closed in %.0f ms; a slot freed is usable again" % (n, n + 1, took * 1000))


def cmd_idle(addr, ms):
    ms = int(ms)
    s = connect(addr)
    if not works(s):
        sys.exit("idle: no echo")
    t0 = time.time()
    s.settimeout(ms / 1000 * 4 + 2)
    try:
        d = s.recv(1)
    except socket.timeout:
        sys.exit("idle: still open after %d ms" % (ms * 4 + 2000))
    except ConnectionResetError:
        d = b""
    took = (time.time() - t0) * 1000
    if d or took < ms / 2:
        sys.exit("idle: closed after %.0f ms (timeout %d ms)" % (took, ms))
    print("ok idle connection closed after %.0f ms (timeout %d ms)" % (took, ms))


def cmd_whoami(addr):
    s = connect(addr)
    me = s.getsockname()
    s.sendall(b"hello\n")
    s.shutdown(socket.SHUT_WR)
    back = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        back += d
    print("%s:%d %s" % (me[0], me[1], back.decode().strip()))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"echo": lambda: cmd_echo(args), "client": lambda: cmd_client(*args), "many": lambda: cmd_many(*args),
     "slow": lambda: cmd_slow(*args), "cap": lambda: cmd_cap(*args), "idle": lambda: cmd_idle(*args),
     "whoami": lambda: cmd_whoami(*args)}[cmd]()
