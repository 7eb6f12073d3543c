#!/usr/bin/env python3
"""Generate tests/unit/test_fw_fixtures.h: the hex frames of test_fw.c and
test_semantics.c.

The expected frames are built here from scratch with full checksum
computation (no incremental updates), independently of the C core, so a
byte-exact match checks the core's NAT rewriting, incremental checksum
updates, ICMP generation and refragmentation.

Run: python3 tests/unit/test_fw_fixtures.py > tests/unit/test_fw_fixtures.h
     python3 tests/unit/test_fw_fixtures.py --corpus \
         tests/fuzz/corpus/fuzz_pipeline   (seed inputs for the fuzzer)
"""
import os
import struct
import sys

FW = "10.137.0.6"
GW = "10.137.0.2"
DNS1 = "10.139.1.1"
WORK = "10.137.0.10"
OTHER = "10.137.0.11"
REMOTE = "93.184.216.34"
BLOCKED = "1.1.1.1"
GRE_DST = "198.51.100.7"

MAC_FE = "fe:ff:ff:ff:ff:ff"
MAC_UP = "00:16:3e:5e:6c:00"  # ours on the uplink
MAC_GW = "02:00:00:00:00:02"  # the gateway (learnt by ARP)
MAC_WORK = "00:16:3e:5e:6c:0a"
MAC_OTHER = "00:16:3e:5e:6c:0b"
BCAST = "ff:ff:ff:ff:ff:ff"


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, typ, payload):
    return mac(dst) + mac(src) + struct.pack("!H", typ) + payload


def ip4(src, dst, proto, payload, ttl=64, ident=0x1234, df=True, mf=False,
        off=0, opts=b"", tos=0, total=None, fix_csum=True):
    hl = 20 + len(opts)
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (off // 8)
    tot = total if total is not None else hl + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | (hl // 4), tos, tot, ident,
                    flags, ttl, proto, 0, ip(src), ip(dst)) + opts
    if fix_csum:
        c = csum(h)
        h = h[:10] + struct.pack("!H", c) + h[12:]
    return h + payload


def pseudo(src, dst, proto, length):
    return ip(src) + ip(dst) + struct.pack("!BBH", 0, proto, length)


def tcp(src, dst, sport, dport, flags, seq=1000, ack=0, data=b"",
        win=64240, partial=False):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags,
                    win, 0, 0) + data
    if partial:
        # CHECKSUM_PARTIAL: folded pseudo-header sum, not inverted
        c = (~csum(pseudo(src, dst, 6, len(h)))) & 0xFFFF
    else:
        c = csum(pseudo(src, dst, 6, len(h)) + h)
    return h[:16] + struct.pack("!H", c) + h[18:]


def udp(src, dst, sport, dport, data, nocsum=False):
    h = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    if nocsum:
        return h
    c = csum(pseudo(src, dst, 17, len(h)) + h) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + h[8:]


def icmp(typ, code, rest, data=b""):
    h = struct.pack("!BBH", typ, code, 0) + rest + data
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def echo(typ, ident, seq, data=b"qwall-ping-data!"):
    return icmp(typ, 0, struct.pack("!HH", ident, seq), data)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac(sha) + ip(spa) + \
        mac(tha) + ip(tpa)


def c_hex(name, b):
    out = ["#define FX_%s \\" % name]
    for i in range(0, len(b), 16):
        out.append('    "%s" \\' % " ".join("%02x" % x for x in b[i:i + 16]))
    out.append('    ""')
    return "\n".join(out)


FX = []


def fx(name, b):
    FX.append((name, b))


def to_up(payload):
    return eth(MAC_GW, MAC_UP, 0x0800, payload)


def from_up(payload):
    return eth(MAC_UP, MAC_GW, 0x0800, payload)


def to_client(m, payload):
    return eth(m, MAC_FE, 0x0800, payload)


def from_client(m, payload):
    return eth(MAC_FE, m, 0x0800, payload)


def icmp_err(dst, typ, code, quoted, mtu=0, src=FW):
    q = quoted[:548]
    return ip4(src, dst, 1, icmp(typ, code, struct.pack("!HH", 0, mtu), q),
               tos=0xC0, df=True, ident=0)


def main():
    # --- TCP 443: SYN, SYN-ACK, data both ways (port 40000 kept) ---
    syn = ip4(WORK, REMOTE, 6, tcp(WORK, REMOTE, 40000, 443, 0x02))
    fx("SYN_IN", from_client(MAC_WORK, syn))
    fx("SYN_OUT", to_up(ip4(FW, REMOTE, 6, tcp(FW, REMOTE, 40000, 443, 0x02),
                            ttl=63)))
    synack = lambda dst: tcp(REMOTE, dst, 443, 40000, 0x12, seq=5000,
                             ack=1001)
    fx("SYNACK_IN", from_up(ip4(REMOTE, FW, 6, synack(FW), ttl=55,
                                ident=0x4321)))
    fx("SYNACK_OUT", to_client(MAC_WORK, ip4(REMOTE, WORK, 6, synack(WORK),
                                             ttl=54, ident=0x4321)))
    data = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    fx("ACK_IN", from_client(MAC_WORK, ip4(WORK, REMOTE, 6, tcp(
        WORK, REMOTE, 40000, 443, 0x18, seq=1001, ack=5001, data=data),
        ident=0x1235)))
    fx("ACK_OUT", to_up(ip4(FW, REMOTE, 6, tcp(
        FW, REMOTE, 40000, 443, 0x18, seq=1001, ack=5001, data=data),
        ident=0x1235, ttl=63)))
    # the same SYN, partial checksum (QW_FRAME_CSUM_BLANK)
    fx("SYN_PARTIAL_IN", from_client(MAC_WORK, ip4(WORK, REMOTE, 6, tcp(
        WORK, REMOTE, 40000, 443, 0x02, partial=True))))
    # an ACK without a connection (mid-stream pickup)
    fx("ACK_NOCONN_IN", from_client(MAC_WORK, ip4(WORK, REMOTE, 6, tcp(
        WORK, REMOTE, 40001, 443, 0x10))))
    # SYN with TTL 1: time exceeded quoting it
    syn_ttl1 = ip4(WORK, REMOTE, 6, tcp(WORK, REMOTE, 40002, 443, 0x02),
                   ttl=1)
    fx("SYN_TTL1_IN", from_client(MAC_WORK, syn_ttl1))
    fx("SYN_TTL1_TE", to_client(MAC_WORK, icmp_err(WORK, 11, 0, syn_ttl1)))

    # --- rejected: TCP 80 (policy), TCP 443 to 1.1.1.1 (rule 0000) ---
    syn80 = ip4(WORK, REMOTE, 6, tcp(WORK, REMOTE, 40003, 80, 0x02))
    fx("SYN80_IN", from_client(MAC_WORK, syn80))
    fx("SYN80_REJECT", to_client(MAC_WORK, icmp_err(WORK, 3, 13, syn80)))
    synb = ip4(WORK, BLOCKED, 6, tcp(WORK, BLOCKED, 40004, 443, 0x02))
    fx("SYN_BLOCKED_IN", from_client(MAC_WORK, synb))
    fx("SYN_BLOCKED_REJECT", to_client(MAC_WORK, icmp_err(WORK, 3, 13,
                                                          synb)))

    # --- UDP DNS via specialtarget=dns, port 5353 kept ---
    q = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d00"
                      "00010001")
    fx("DNS_IN", from_client(MAC_WORK, ip4(WORK, DNS1, 17, udp(
        WORK, DNS1, 5353, 53, q), ident=0x2000)))
    dns_out = ip4(FW, DNS1, 17, udp(FW, DNS1, 5353, 53, q), ident=0x2000,
                  ttl=63)
    fx("DNS_OUT", to_up(dns_out))
    # port unreachable from the gateway about the query (full quote and
    # a 28-byte quote), translated back to the client
    dns_orig = ip4(WORK, DNS1, 17, udp(WORK, DNS1, 5353, 53, q),
                   ident=0x2000, ttl=63)
    fx("DNS_UNREACH_IN", from_up(icmp_err(FW, 3, 3, dns_out, src=GW)))
    fx("DNS_UNREACH_OUT", to_client(MAC_WORK, ip4(
        GW, WORK, 1, icmp(3, 3, b"\0\0\0\0", dns_orig), tos=0xC0,
        ident=0, ttl=63)))
    fx("DNS_UNREACH28_IN", from_up(icmp_err(FW, 3, 3, dns_out[:28],
                                            src=GW)))
    fx("DNS_UNREACH28_OUT", to_client(MAC_WORK, ip4(
        GW, WORK, 1, icmp(3, 3, b"\0\0\0\0", dns_orig[:28]), tos=0xC0,
        ident=0, ttl=63)))
    # a reply, and the client's port unreachable about it
    ans = q[:2] + b"\x81\x80" + q[4:]
    reply_in = ip4(DNS1, FW, 17, udp(DNS1, FW, 53, 5353, ans), ident=0x3000)
    reply_out = ip4(DNS1, WORK, 17, udp(DNS1, WORK, 53, 5353, ans),
                    ident=0x3000, ttl=63)
    fx("DNSR_IN", from_up(reply_in))
    fx("DNSR_OUT", to_client(MAC_WORK, reply_out))
    fx("DNSR_UNREACH_IN", from_client(MAC_WORK, ip4(
        WORK, DNS1, 1, icmp(3, 3, b"\0\0\0\0", reply_out), ident=0x77)))
    fx("DNSR_UNREACH_OUT", to_up(ip4(
        FW, DNS1, 1, icmp(3, 3, b"\0\0\0\0", ip4(
            DNS1, FW, 17, udp(DNS1, FW, 53, 5353, ans), ident=0x3000,
            ttl=63)), ident=0x77, ttl=63)))

    # --- ICMP echo to a remote (id 0x0bcd kept), and its reply ---
    fx("PING_IN", from_client(MAC_WORK, ip4(WORK, REMOTE, 1,
                                            echo(8, 0x0BCD, 1))))
    fx("PING_OUT", to_up(ip4(FW, REMOTE, 1, echo(8, 0x0BCD, 1), ttl=63)))
    fx("PONG_IN", from_up(ip4(REMOTE, FW, 1, echo(0, 0x0BCD, 1),
                              ident=0x999)))
    fx("PONG_OUT", to_client(MAC_WORK, ip4(REMOTE, WORK, 1,
                                           echo(0, 0x0BCD, 1), ident=0x999,
                                           ttl=63)))
    # an echo reply from a client (not a query): dropped
    fx("CLIENT_PONG_IN", from_client(MAC_WORK, ip4(WORK, REMOTE, 1,
                                                   echo(0, 7, 1))))
    # a port unreachable from a client quoting nothing tracked
    fx("CLIENT_UNREACH_IN", from_client(MAC_WORK, ip4(
        WORK, REMOTE, 1, icmp(3, 3, b"\0\0\0\0", ip4(
            REMOTE, WORK, 17, udp(REMOTE, WORK, 9, 9, b"x"))))))

    # --- GRE to 198.51.100.7 accepted by a rule without proto ---
    gre = b"\x00\x00\x08\x00" + b"\x45" + b"\0" * 27
    fx("GRE_IN", from_client(MAC_WORK, ip4(WORK, GRE_DST, 47, gre)))
    fx("GRE_OUT", to_up(ip4(FW, GRE_DST, 47, gre, ttl=63)))

    # --- to the firewall: ping answered, TCP 22 host-prohibited, DHCP ---
    fx("FWPING_IN", from_client(MAC_WORK, ip4(WORK, FW, 1,
                                              echo(8, 0x42, 7))))
    fx("FWPING_OUT", to_client(MAC_WORK, ip4(FW, WORK, 1, echo(0, 0x42, 7))))
    ssh = ip4(WORK, FW, 6, tcp(WORK, FW, 40005, 22, 0x02))
    fx("FWSSH_IN", from_client(MAC_WORK, ssh))
    fx("FWSSH_REJECT", to_client(MAC_WORK, icmp_err(WORK, 3, 10, ssh)))
    fx("DHCP_IN", eth(BCAST, MAC_WORK, 0x0800, ip4(
        "0.0.0.0", "255.255.255.255", 17,
        udp("0.0.0.0", "255.255.255.255", 68, 67, b"\x01\x01\x06\x00" +
            b"\0" * 236), df=False)))

    # --- isolation, spoofing, uplink-new ---
    fx("C2C_IN", from_client(MAC_WORK, ip4(WORK, OTHER, 6, tcp(
        WORK, OTHER, 40006, 22, 0x02))))
    fx("SPOOF_IN", from_client(MAC_WORK, ip4("10.137.0.99", REMOTE, 6, tcp(
        "10.137.0.99", REMOTE, 40007, 443, 0x02))))
    fx("UPSPOOF_CLIENT_IN", from_up(ip4(WORK, FW, 6, tcp(
        WORK, FW, 1, 40000, 0x12))))
    fx("UPSPOOF_CONNECTED_IN", from_up(ip4("10.137.0.50", FW, 6, tcp(
        "10.137.0.50", FW, 1, 40000, 0x12))))
    fx("UPSPOOF_FW_IN", from_up(ip4(FW, FW, 6, tcp(FW, FW, 1, 40000,
                                                      0x12))))
    fx("UPNEW_IN", from_up(ip4(REMOTE, FW, 6, tcp(REMOTE, FW, 50000, 22,
                                                     0x02))))
    fx("UPNEW_CLIENT_IN", from_up(ip4(REMOTE, WORK, 6, tcp(
        REMOTE, WORK, 50000, 22, 0x02))))
    fx("UPPING_IN", from_up(ip4(REMOTE, FW, 1, echo(8, 0x77, 1))))
    fx("UPPING_OUT", to_up(ip4(FW, REMOTE, 1, echo(0, 0x77, 1))))

    # --- ARP ---
    fx("ARP_CLIENT_REQ", eth(BCAST, MAC_WORK, 0x0806, arp(
        1, MAC_WORK, WORK, "00:00:00:00:00:00", FW)))
    fx("ARP_CLIENT_REP", eth(MAC_WORK, MAC_FE, 0x0806, arp(
        2, MAC_FE, FW, MAC_WORK, WORK)))
    fx("ARP_CLIENT_REQ_ANY", eth(BCAST, MAC_WORK, 0x0806, arp(
        1, MAC_WORK, WORK, "00:00:00:00:00:00", "10.137.0.1")))
    fx("ARP_CLIENT_REP_ANY", eth(MAC_WORK, MAC_FE, 0x0806, arp(
        2, MAC_FE, "10.137.0.1", MAC_WORK, WORK)))
    fx("ARP_CLIENT_REQ_OWN", eth(BCAST, MAC_WORK, 0x0806, arp(
        1, MAC_WORK, WORK, "00:00:00:00:00:00", WORK)))
    fx("ARP_CLIENT_REPLY", eth(MAC_FE, MAC_WORK, 0x0806, arp(
        2, MAC_WORK, WORK, MAC_FE, FW)))
    fx("ARP_UP_GARP", eth(BCAST, MAC_UP, 0x0806, arp(
        1, MAC_UP, FW, "00:00:00:00:00:00", FW)))
    fx("ARP_UP_GWREQ", eth(BCAST, MAC_UP, 0x0806, arp(
        1, MAC_UP, FW, "00:00:00:00:00:00", GW)))
    fx("ARP_UP_GWREP", eth(MAC_UP, MAC_GW, 0x0806, arp(
        2, MAC_GW, GW, MAC_UP, FW)))
    fx("ARP_UP_REQ", eth(BCAST, MAC_GW, 0x0806, arp(
        1, MAC_GW, GW, "00:00:00:00:00:00", FW)))
    fx("ARP_UP_REP", eth(MAC_GW, MAC_UP, 0x0806, arp(
        2, MAC_UP, FW, MAC_GW, GW)))

    # --- IPv6, bad frames ---
    fx("IPV6_IN", eth(MAC_FE, MAC_WORK, 0x86DD, bytes.fromhex(
        "6000000000083a40") + b"\xfe\x80" + b"\0" * 14 + b"\xff\x02" +
        b"\0" * 13 + b"\x02" + bytes.fromhex("8500000000000000")))
    good = ip4(WORK, REMOTE, 6, tcp(WORK, REMOTE, 40000, 443, 0x02))
    bad = bytearray(good)
    bad[10] ^= 0xFF
    fx("BADCSUM_IN", from_client(MAC_WORK, bytes(bad)))
    # IP options (router alert, 4 bytes) are tolerated and kept
    syno = ip4(WORK, REMOTE, 6, tcp(WORK, REMOTE, 40010, 443, 0x02),
               opts=b"\x94\x04\x00\x00")
    fx("SYN_OPTS_IN", from_client(MAC_WORK, syno))
    fx("SYN_OPTS_OUT", to_up(ip4(FW, REMOTE, 6, tcp(FW, REMOTE, 40010, 443,
                                                    0x02), ttl=63,
                                 opts=b"\x94\x04\x00\x00")))
    # trailing Ethernet padding is not forwarded
    fx("SYN_PAD_IN", from_client(MAC_WORK, ip4(WORK, REMOTE, 6, tcp(
        WORK, REMOTE, 40011, 443, 0x02))) + b"\0" * 6)
    fx("SYN_PAD_OUT", to_up(ip4(FW, REMOTE, 6, tcp(FW, REMOTE, 40011, 443,
                                                   0x02), ttl=63)))

    # --- fragments: a 3000-byte UDP datagram in 3 fragments ---
    big = bytes((i * 7) & 0xFF for i in range(2972))
    u_in = udp(WORK, DNS1, 5354, 53, big)
    u_out = udp(FW, DNS1, 5354, 53, big)
    for i, (a, b) in enumerate(((0, 1000), (1000, 2000), (2000, 2980))):
        fx("FRAG%d_IN" % i, from_client(MAC_WORK, ip4(
            WORK, DNS1, 17, u_in[a:b], ident=0x5555, df=False,
            mf=b < 2980, off=a)))
    for i, (a, b) in enumerate(((0, 1480), (1480, 2960), (2960, 2980))):
        fx("FRAG%d_OUT" % i, to_up(ip4(
            FW, DNS1, 17, u_out[a:b], ident=0x5555, df=False,
            mf=b < 2980, off=a, ttl=63)))
    # a 2000-byte frame (GSO-like) with DF: fragmentation needed
    bigdf = ip4(WORK, REMOTE, 6, tcp(WORK, REMOTE, 40012, 443, 0x02,
                                     data=b"z" * 1946))
    fx("BIGDF_IN", from_client(MAC_WORK, bigdf))
    fx("BIGDF_NEEDFRAG", to_client(MAC_WORK, icmp_err(WORK, 3, 4, bigdf,
                                                      mtu=1500)))

    # another client, same source port to the same server: new NAT port
    fx("SYN_OTHER_IN", from_client(MAC_OTHER, ip4(OTHER, REMOTE, 6, tcp(
        OTHER, REMOTE, 40000, 443, 0x02))))
    # a 2000-byte UDP frame without DF: refragmented (1500 + 520)
    bigu_in = udp(WORK, DNS1, 5355, 53, b"y" * 1972)
    bigu_out = udp(FW, DNS1, 5355, 53, b"y" * 1972)
    fx("BIGUDP_IN", from_client(MAC_WORK, ip4(WORK, DNS1, 17, bigu_in,
                                              ident=0x6666, df=False)))
    fx("BIGUDP0_OUT", to_up(ip4(FW, DNS1, 17, bigu_out[:1480], ident=0x6666,
                                df=False, mf=True, ttl=63,
                                total=1500)))
    fx("BIGUDP1_OUT", to_up(ip4(FW, DNS1, 17, bigu_out[1480:],
                                ident=0x6666, df=False, off=1480, ttl=63)))

    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        write_corpus(sys.argv[2])
        return
    print("/* Generated by tests/unit/test_fw_fixtures.py: do not edit. */")
    print("/* clang-format off */")
    print("#ifndef TEST_FW_FIXTURES_H")
    print("#define TEST_FW_FIXTURES_H")
    for name, b in FX:
        print(c_hex(name, b))
    print("/* clang-format on */")
    print("#endif")


def link_of(b):
    """The link a fixture arrives on, from its MACs."""
    if b[6:12] == mac(MAC_GW) or b[0:6] == mac(MAC_UP):
        return 0
    if b[6:12] == mac(MAC_OTHER):
        return 2
    return 1


def record(b, op=0):
    return bytes([op, link_of(b)]) + struct.pack("<H", len(b)) + b


def write_corpus(d):
    os.makedirs(d, exist_ok=True)
    f = dict(FX)
    ins = [n for n, _ in FX if n.endswith("_IN") or "ARP" in n]
    for n in ins:
        with open(os.path.join(d, "seed_" + n.lower()), "wb") as o:
            o.write(record(f[n], 1 if n == "SYN_PARTIAL_IN" else 0))
    seqs = {
        "tcp_flow": ["SYN_IN", "SYNACK_IN", "ACK_IN"],
        "dns_flow_errors": ["DNS_IN", "DNS_UNREACH_IN", "DNSR_IN",
                            "DNSR_UNREACH_IN", "DNS_UNREACH28_IN"],
        "fragments": ["FRAG0_IN", "FRAG2_IN", "FRAG1_IN"],
        "ping_flow": ["PING_IN", "PONG_IN"],
    }
    for name, parts in seqs.items():
        with open(os.path.join(d, "seq_" + name), "wb") as o:
            for i, n in enumerate(parts):
                o.write(record(f[n]))
                if name == "tcp_flow" and i == 0:
                    o.write(bytes([2, 31]))  # 31 s later, then poll
    # control events between frames (op 3): rule commits with re-checks,
    # /connected-ips and gateway changes, detach/attach
    ctl = {
        "ctl_rules_recheck": [("SYN_IN",), (3, 1), ("SYNACK_IN",), (3, 2),
                              ("ACK_IN",), (3, 5), ("SYNACK_IN",)],
        "ctl_connected_gateway": [("DNS_IN",), (3, 6), ("DNSR_IN",),
                                  (3, 15), ("DNSR_IN",), (3, 7),
                                  ("DNS_IN",)],
    }
    for name, parts in ctl.items():
        with open(os.path.join(d, "seq_" + name), "wb") as o:
            for part in parts:
                o.write(record(f[part[0]]) if isinstance(part[0], str)
                        else bytes(part))


main()
