#!/usr/bin/env python3
"""probe.py: what a client or the uplink observes, as one word.

  probe.py tcp HOST PORT [--sport N] [--send DATA] [--timeout S]
  probe.py udp HOST PORT [--sport N] [--size N] [--send DATA] [--timeout S]
      prints "open <first reply line>", "refused" (RST or ICMP port
      unreachable), "prohibited" (ICMP host/admin prohibited or
      unreachable), "timeout", or "error <errno name>"
  probe.py hold HOST PORT      TCP connection kept open; each line on stdin
                               is sent, the echo awaited (2 s): prints
                               "ok" or "fail <why>" per line
  probe.py sink udp|tcp ADDR PORT SECONDS   prints "src_ip:src_port len"
                               for every datagram / connection
  probe.py sniff IFACE ETHERTYPE SECONDS [--proto N] [--dst IP] [--icmp-type T]
                               counts frames of that type (IPv4 filters)
  probe.py icmp DST TYPE ID [--quote SRC:SPORT-DST:DPORT] [--pad N]
                               sends one ICMP message from a raw socket:
                               a query (id ID), or an error quoting a TCP
                               header between the given endpoints
  probe.py garbage IFACE COUNT  sends COUNT malformed frames on IFACE
  probe.py flood HOST PORT SECONDS          UDP as fast as possible
  probe.py pcap FILE [--src IP] [--dport N] counts IPv4 TCP/UDP frames in a
                               pcap file matching the filters
  probe.py comments FILE       prints the packet comments of a pcapng file
"""
import errno
import os
import random
import select
import socket
import struct
import sys
import time


def outcome_of(err):
    if err in (errno.ECONNREFUSED,):
        return "refused"
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES,
               errno.EPERM):
        return "prohibited"
    if err in (errno.ETIMEDOUT, errno.EAGAIN):
        return "timeout"
    return "error " + errno.errorcode.get(err, str(err))


def opt(args, name, default=None):
    if name in args:
        i = args.index(name)
        return args[i + 1]
    return default


def probe(kind, host, port, args):
    timeout = float(opt(args, "--timeout", "3"))
    sport = int(opt(args, "--sport", "0"))
    data = opt(args, "--send", "probe\n").encode()
    size = int(opt(args, "--size", "0"))
    if size:
        data = b"x" * size
    st = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, st)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sport:
        s.bind(("0.0.0.0", sport))
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.send(data)
        reply = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
            if kind == "udp" or b"\n" in reply:
                break
        if not reply and kind == "tcp":
            return "open"
        if "--len" in args:
            return "open %d" % len(reply)
        first = reply.decode(errors="replace").split("\n")[0].strip()
        return ("open " + first).strip()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return outcome_of(e.errno)
    finally:
        s.close()


def hold(host, port):
    s = socket.create_connection((host, port), timeout=3)
    print("connected", flush=True)
    for line in sys.stdin:
        msg = line.strip().encode() + b"\n"
        try:
            s.settimeout(2)
            s.send(msg)
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError(errno.ECONNRESET, "closed")
                got += chunk
            print("ok" if got == msg else "fail mismatch", flush=True)
        except socket.timeout:
            print("fail timeout", flush=True)
        except OSError as e:
            print("fail " + outcome_of(e.errno), flush=True)


def sink(kind, addr, port, secs):
    st = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, st)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if kind == "tcp":
        s.listen(16)
    print("listening", flush=True)
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r:
            continue
        if kind == "tcp":
            c, peer = s.accept()
            print("%s:%d 0" % peer, flush=True)
            c.close()
        else:
            d, peer = s.recvfrom(65536)
            print("%s:%d %d" % (peer[0], peer[1], len(d)), flush=True)


def sniff(iface, ethertype, secs, args=()):
    proto = opt(list(args), "--proto")
    dst = opt(list(args), "--dst")
    itype = opt(list(args), "--icmp-type")
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(ethertype))
    s.bind((iface, 0))
    print("listening", flush=True)
    n = 0
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r:
            continue
        d = s.recv(65536)
        ip = d[14:]
        if proto and (len(ip) < 20 or ip[9] != int(proto)):
            continue
        if dst and (len(ip) < 20 or socket.inet_ntoa(ip[16:20]) != dst):
            continue
        if itype:
            ihl = (ip[0] & 15) * 4
            if len(ip) <= ihl or ip[ihl] != int(itype):
                continue
        n += 1
    print(n)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff


def icmp_send(dst, itype, ident, args):
    quote = opt(args, "--quote")
    pad = int(opt(args, "--pad", "0"))
    if quote:
        (qs, qsp), (qd, qdp) = [(x.split(":")[0], int(x.split(":")[1]))
                                for x in quote.split("-")]
        inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0x4000, 64, 6,
                            0, socket.inet_aton(qs), socket.inet_aton(qd))
        inner = inner[:10] + struct.pack("!H", csum(inner)) + inner[12:]
        body = struct.pack("!I", 0) + inner + struct.pack("!HHI", qsp, qdp, 1)
        body += b"E" * pad
        code = 3
    else:
        body = struct.pack("!HH", ident, 1) + b"\0" * 12
        code = 0
    msg = struct.pack("!BBH", itype, code, 0) + body
    msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.sendto(msg, (dst, 0))
    print("sent")


def garbage(iface, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    mac = open("/sys/class/net/%s/address" % iface).read().strip()
    src = bytes(int(x, 16) for x in mac.split(":"))
    dst = b"\xfe\xff\xff\xff\xff\xff"
    rnd = random.Random(7)
    for i in range(count):
        kind = i % 6
        if kind == 0:  # random bytes after an IPv4 ethertype
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 80)))
            f = dst + src + b"\x08\x00" + body
        elif kind == 1:  # IPv4 header claiming a huge total length
            f = dst + src + b"\x08\x00" + bytes([0x45, 0, 0xff, 0xff]) + \
                bytes(16)
        elif kind == 2:  # bad header length
            f = dst + src + b"\x08\x00" + bytes([0x4f]) + bytes(40)
        elif kind == 3:  # truncated ARP
            f = dst + src + b"\x08\x06" + bytes(10)
        elif kind == 4:  # runt frame
            f = dst + src[:3]
        else:  # fragment soup: offset/MF set, random payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 8, rnd.getrandbits(16),
                             0x2000 | rnd.randint(0, 8000), 64, 17, 0,
                             socket.inet_aton("10.137.0.11"),
                             socket.inet_aton("10.139.0.10"))
            f = dst + src + b"\x08\x00" + ip + bytes(8)
        try:
            s.send(f)
        except OSError:
            pass
    print("sent", count)


def flood(host, port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    end = time.time() + secs
    n = 0
    data = b"f" * 64
    while time.time() < end:
        for _ in range(256):
            try:
                s.sendto(data, (host, port))
                n += 1
            except OSError:
                pass
    print("sent", n)


def pcap_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def pcap_count(path, args):
    src = opt(args, "--src")
    dport = opt(args, "--dport")
    n = 0
    for fr in pcap_frames(path):
        if len(fr) < 34 or fr[12:14] != b"\x08\x00":
            continue
        ihl = (fr[14] & 15) * 4
        if src and socket.inet_ntoa(fr[26:30]) != src:
            continue
        if dport:
            if fr[23] not in (6, 17) or len(fr) < 14 + ihl + 4:
                continue
            if struct.unpack_from("!H", fr, 14 + ihl + 2)[0] != int(dport):
                continue
        n += 1
    print(n)


def pcapng_comments(path):
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if btype == 6:  # enhanced packet block
            caplen = struct.unpack_from("<I", data, off + 20)[0]
            o = off + 28 + (caplen + 3) // 4 * 4
            while o + 4 <= off + blen - 4:
                code, olen = struct.unpack_from("<HH", data, o)
                if code == 0:
                    break
                if code == 1:
                    print(data[o + 4:o + 4 + olen].decode(errors="replace"))
                o += 4 + (olen + 3) // 4 * 4
        off += blen
        if blen == 0:
            break


def main(a):
    if a[0] in ("tcp", "udp"):
        print(probe(a[0], a[1], int(a[2]), a[3:]))
    elif a[0] == "hold":
        hold(a[1], int(a[2]))
    elif a[0] == "sink":
        sink(a[1], a[2], int(a[3]), float(a[4]))
    elif a[0] == "sniff":
        sniff(a[1], int(a[2], 0), float(a[3]), a[4:])
    elif a[0] == "icmp":
        icmp_send(a[1], int(a[2]), int(a[3], 0), a[4:])
    elif a[0] == "garbage":
        garbage(a[1], int(a[2]))
    elif a[0] == "flood":
        flood(a[1], int(a[2]), float(a[3]))
    elif a[0] == "pcap":
        pcap_count(a[1], a[2:])
    elif a[0] == "comments":
        pcapng_comments(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
