#!/usr/bin/env python3
"""qdbvm.py VMSOCK CTLSOCK QDB-DOM0: plays a VM against qdb-dom0 and checks
it behaves as dom0's daemon does (used by s85_qdb_dom0.sh). Prints one
"ok ..." or "FAIL ..." line per check."""
import socket
import struct
import subprocess
import sys
import threading

HDR = struct.Struct("<B64s3xI")
WRITE, MULTIREAD, RM, OK, RESP_MULTIREAD = 1, 2, 4, 7, 11


def msg(t, path, data=b""):
    return HDR.pack(t, path.encode(), len(data)) + data


def read_msg(s):
    h = b""
    while len(h) < HDR.size:
        c = s.recv(HDR.size - len(h))
        if not c:
            return None
        h += c
    t, path, n = HDR.unpack(h)
    d = b""
    while len(d) < n:
        d += s.recv(n - len(d))
    return t, path.split(b"\0")[0].decode(), d.decode()


def check(cond, what):
    print(("ok " if cond else "FAIL ") + what, flush=True)


def ctl(qdb, ctlsock, *args):
    return subprocess.run([qdb, "ctl", ctlsock] + list(args),
                          capture_output=True, text=True, timeout=10).stdout


def main(vm, ctlsock, qdb):
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm)
    s.settimeout(5)
    s.sendall(msg(MULTIREAD, ""))
    dump = []
    while True:
        m = read_msg(s)
        if m is None or (m[0] == RESP_MULTIREAD and m[1] == ""):
            break
        dump.append(m)
    paths = [m[1] for m in dump]
    check(len(paths) >= 2 and paths == sorted(paths, reverse=True),
          "dump in reverse sorted order, then the terminator")
    check(all(m[0] == RESP_MULTIREAD for m in dump), "dump entries are RESP_MULTIREAD")
    # A live change is pushed; ctl returns only after our RESP_OK.
    out = {}
    t = threading.Thread(target=lambda: out.update(r=ctl(qdb, ctlsock, "write", "/t/a", "v1")))
    t.start()
    m = read_msg(s)
    check(m == (WRITE, "/t/a", "v1"), "pushed CMD_WRITE /t/a = v1")
    check(t.is_alive(), "ctl waits for the VM's acknowledgement")
    s.sendall(msg(OK, "/t/a"))
    t.join(5)
    check(out.get("r", "").strip() == "ok", "ctl answered ok after RESP_OK")
    t = threading.Thread(target=lambda: out.update(r=ctl(qdb, ctlsock, "rm", "/t/")))
    t.start()
    m = read_msg(s)
    check(m == (RM, "/t/", ""), "pushed CMD_RM /t/")
    s.sendall(msg(OK, "/t/"))
    t.join(5)
    # Our own write is stored and acknowledged.
    s.sendall(msg(WRITE, "/qubes-iptables-error", b"x"))
    m = read_msg(s)
    check(m is not None and m[0] == OK, "VM write answered RESP_OK")
    check("/qubes-iptables-error = x" in ctl(qdb, ctlsock, "dump"), "VM write stored")
    # Violations are fatal for the connection and counted.
    s.sendall(msg(MULTIREAD, ""))
    check(read_msg(s) is None, "second MULTIREAD: connection closed")
    check("violations=1" in ctl(qdb, ctlsock, "stats"), "counted")
    for bad, what in ((msg(WRITE, "/a b", b"x"), "space in path"),
                      (msg(WRITE, "/nul", b"a\0b"), "NUL in WRITE data"),
                      (msg(8, "/x"), "ERROR_NOENT from a VM"),
                      (msg(9, "/x", b"e"), "RESP_ERROR with data"),
                      (msg(WRITE, "-x", b"v"), "leading '-'")):
        c = socket.socket(socket.AF_UNIX)
        c.connect(vm)
        c.settimeout(5)
        c.sendall(bad)
        check(read_msg(c) is None, "rejected: " + what)
        c.close()
    check("violations=6" in ctl(qdb, ctlsock, "stats"), "all six counted")


if __name__ == "__main__":
    main(*sys.argv[1:4])
