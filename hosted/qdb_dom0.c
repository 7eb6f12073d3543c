/*
 * qdb_dom0.c: qdb-dom0, dom0's side of QubesDB for the hosted build.
 *
 *   qdb-dom0 serve --db FILE --vm VMSOCK --ctl CTLSOCK
 *   qdb-dom0 ctl CTLSOCK write PATH VALUE | rm PATH | commit DIR
 *                        | load-rules IP FILE | vif-add NAME IP MAC IFNAME
 *                        | vif-rm NAME | dump | stats | wait-synced [SECS]
 *
 * serve plays dom0's per-VM qubesdb-daemon on a Unix stream socket (the
 * VM side is qwall-hosted): it answers the VM's MULTIREAD with one
 * RESP_MULTIREAD per key in reverse sorted order and the empty terminator,
 * then pushes CMD_WRITE / CMD_RM for every change made through the control
 * socket and consumes the VM's RESP_OK. Everything the VM sends is judged
 * as dom0 does (qubes-interfaces.md 6.1): a violation closes the VM
 * connection (dom0's daemon would exit) and is counted in `stats`, so
 * tests can assert that the firewall never sent anything dom0 rejects.
 *
 * The database file holds `path = value` lines (value may be empty, '#'
 * starts a comment line). A control request returns once the VM has
 * acknowledged every message it caused (or at once when no VM is synced:
 * the change is then in the next dump), so tests need no sleeps.
 *
 * Control wire format (client -> server): NUL-terminated strings, "W" path
 * value | "R" path | "Q" query, until EOF; the answer is text.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qdb.h"

#define MAX_KEYS 16384u
#define ACK_TIMEOUT_MS 5000

struct kv {
    char *path;
    char *value;
};

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static struct {
    struct kv keys[MAX_KEYS];
    unsigned nkeys;
    int vm_listen, ctl_listen, vm, ctl;
    struct buf vm_in, vm_out, ctl_in, ctl_out;
    bool multiread_seen, synced;
    unsigned pending_acks;
    bool ctl_waiting; /* request applied, waiting for the VM's acks */
    bool ctl_changed; /* the request wrote or removed keys: answer "ok" */
    struct timespec ctl_since;
    /* counters */
    unsigned long violations, pushed, acked, errors, vm_writes, vm_rms, dumps,
        connections;
    bool verbose;
} S;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;

    fputs("qdb-dom0: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            say("out of memory");
            exit(1);
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void buf_drop(struct buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* --- the database ------------------------------------------------------ */

static int find_key(const char *path)
{
    unsigned i;

    for (i = 0; i < S.nkeys; i++)
        if (strcmp(S.keys[i].path, path) == 0)
            return (int)i;
    return -1;
}

static int db_write(const char *path, const char *value)
{
    int i = find_key(path);

    if (i >= 0) {
        free(S.keys[i].value);
        S.keys[i].value = strdup(value);
        return 0;
    }
    if (S.nkeys == MAX_KEYS)
        return -1;
    S.keys[S.nkeys].path = strdup(path);
    S.keys[S.nkeys].value = strdup(value);
    S.nkeys++;
    return 0;
}

static void db_remove_at(unsigned i)
{
    free(S.keys[i].path);
    free(S.keys[i].value);
    S.keys[i] = S.keys[--S.nkeys];
}

/* "dir/" removes every key under it; anything else one key. Returns the
 * number removed. */
static unsigned db_rm(const char *path)
{
    size_t n = strlen(path);
    unsigned i = 0, removed = 0;

    while (i < S.nkeys) {
        bool hit = n && path[n - 1] == '/'
                       ? strncmp(S.keys[i].path, path, n) == 0
                       : strcmp(S.keys[i].path, path) == 0;
        if (hit) {
            db_remove_at(i);
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(((const struct kv *)b)->path, ((const struct kv *)a)->path);
}

static int db_load(const char *file)
{
    char line[4096];
    FILE *f = fopen(file, "r");
    unsigned no = 0;

    if (!f) {
        say("cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *eq, *path = line, *value, *end;

        no++;
        line[strcspn(line, "\n")] = '\0';
        path += strspn(path, " \t");
        if (*path == '#' || *path == '\0')
            continue;
        eq = strchr(path, '=');
        if (!eq) {
            say("%s:%u: expected 'path = value'", file, no);
            fclose(f);
            return -1;
        }
        value = eq + 1;
        end = eq;
        while (end > path && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        if (*value == ' ')
            value++;
        if (!qdb_path_ok(path, false) || !qdb_data_ok(value, strlen(value)) ||
            db_write(path, value) < 0) {
            say("%s:%u: bad key or value", file, no);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* --- the VM connection --------------------------------------------------- */

static void vm_send(unsigned type, const char *path, const char *value)
{
    uint8_t msg[QDB_HDR_LEN + QDB_MAX_DATA];
    size_t n = value ? strlen(value) : 0;
    size_t len = qdb_encode(msg, sizeof(msg), type, path, value, n);

    if (len)
        buf_add(&S.vm_out, msg, len);
}

static void vm_close(const char *why)
{
    if (S.vm < 0)
        return;
    say("vm: connection closed (%s)", why);
    close(S.vm);
    S.vm = -1;
    S.vm_in.len = S.vm_out.len = 0;
    S.multiread_seen = S.synced = false;
    S.pending_acks = 0;
}

static void violation(const char *why, const char *path)
{
    S.violations++;
    say("vm: protocol violation, dom0 would drop this VM: %s (path '%s')", why,
        path);
    vm_close("violation");
}

static void vm_dump(const char *prefix)
{
    size_t n = strlen(prefix);
    unsigned i;

    qsort(S.keys, S.nkeys, sizeof(S.keys[0]), cmp_desc);
    for (i = 0; i < S.nkeys; i++)
        if (strncmp(S.keys[i].path, prefix, n) == 0)
            vm_send(QDB_RESP_MULTIREAD, S.keys[i].path, S.keys[i].value);
    vm_send(QDB_RESP_MULTIREAD, "", NULL);
    S.synced = true;
    S.dumps++;
    if (S.verbose)
        say("vm: sent the dump (%u keys)", S.nkeys);
}

/* One complete message from the VM; the checks are dom0's verify_hdr
 * for a vchan peer plus its per-type handling. */
static void vm_message(const struct qdb_hdr *h, const uint8_t *data)
{
    char value[QDB_MAX_DATA + 1];
    bool empty_ok = h->type == QDB_CMD_MULTIREAD || h->type == QDB_RESP_OK ||
                    h->type == QDB_RESP_ERROR || h->type == QDB_RESP_MULTIREAD;

    if (!qdb_path_ok(h->path, empty_ok))
        return violation("bad path", h->path);
    memcpy(value, data, h->data_len);
    value[h->data_len] = '\0';
    switch (h->type) {
    case QDB_CMD_MULTIREAD:
        if (S.multiread_seen)
            return violation("second MULTIREAD", h->path);
        S.multiread_seen = true;
        vm_dump(h->path);
        break;
    case QDB_CMD_WRITE:
        if (!qdb_data_ok(data, h->data_len))
            return violation("NUL in WRITE data", h->path);
        if (!h->path[0])
            return violation("WRITE without path", h->path);
        S.vm_writes++;
        db_write(h->path, value);
        vm_send(QDB_RESP_OK, h->path, NULL);
        break;
    case QDB_CMD_RM:
        if (!h->path[0])
            return violation("RM without path", h->path);
        S.vm_rms++;
        db_rm(h->path);
        vm_send(QDB_RESP_OK, h->path, NULL);
        break;
    case QDB_RESP_OK:
    case QDB_RESP_ERROR:
        if (h->type == QDB_RESP_ERROR) {
            if (h->data_len)
                return violation("RESP_ERROR with data", h->path);
            S.errors++;
        }
        if (S.pending_acks) {
            S.pending_acks--;
            S.acked++;
        }
        break;
    case QDB_RESP_MULTIREAD:
        break; /* allowed by dom0's type check, meaningless here */
    default:
        return violation("message type not allowed from a VM", h->path);
    }
}

static void vm_input(void)
{
    while (S.vm >= 0 && S.vm_in.len >= QDB_HDR_LEN) {
        struct qdb_hdr h;

        if (qdb_decode_hdr(S.vm_in.p, &h) < 0)
            return violation("path not NUL-terminated", "");
        if (h.data_len >= QDB_MAX_DATA)
            return violation("data_len too large", h.path);
        if (S.vm_in.len < QDB_HDR_LEN + h.data_len)
            return;
        vm_message(&h, S.vm_in.p + QDB_HDR_LEN);
        if (S.vm >= 0)
            buf_drop(&S.vm_in, QDB_HDR_LEN + h.data_len);
    }
}

/* Push a change to a synced VM; it must answer RESP_OK. */
static void push(unsigned type, const char *path, const char *value)
{
    if (S.vm < 0 || !S.synced)
        return;
    vm_send(type, path, value);
    S.pending_acks++;
    S.pushed++;
}

/* --- control requests ---------------------------------------------------- */

static void ctl_reply(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void ctl_reply(const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_add(&S.ctl_out, line,
                (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void ctl_query(const char *q)
{
    unsigned i;

    if (strcmp(q, "dump") == 0) {
        qsort(S.keys, S.nkeys, sizeof(S.keys[0]), cmp_desc);
        for (i = S.nkeys; i-- > 0;)
            ctl_reply("%s = %s\n", S.keys[i].path, S.keys[i].value);
    } else if (strcmp(q, "stats") == 0) {
        ctl_reply("connected=%d synced=%d connections=%lu dumps=%lu "
                  "violations=%lu pushed=%lu acked=%lu errors=%lu "
                  "vm_writes=%lu vm_rms=%lu keys=%u\n",
                  S.vm >= 0, S.synced, S.connections, S.dumps, S.violations,
                  S.pushed, S.acked, S.errors, S.vm_writes, S.vm_rms, S.nkeys);
    } else if (strcmp(q, "synced") == 0) {
        ctl_reply("%s\n", S.synced ? "synced" : "not-synced");
    } else {
        ctl_reply("error: unknown query %s\n", q);
    }
}

/* Apply a whole request; returns false on a malformed one. */
static bool ctl_apply(void)
{
    const char *p = (const char *)S.ctl_in.p, *end = p + S.ctl_in.len;

    S.ctl_changed = false;
    if (S.ctl_in.len == 0 || S.ctl_in.p[S.ctl_in.len - 1] != '\0')
        return false;
    while (p < end) {
        const char *op = p, *a = op + strlen(op) + 1, *b;

        if (a >= end)
            return false;
        b = a + strlen(a) + 1;
        if (strcmp(op, "Q") == 0) {
            ctl_query(a);
            p = b;
        } else if (strcmp(op, "R") == 0) {
            S.ctl_changed = true;
            if (!qdb_path_ok(a, false))
                return false;
            if (db_rm(a) > 0)
                push(QDB_CMD_RM, a, NULL); /* dom0 forwards real removals */
            p = b;
        } else if (strcmp(op, "W") == 0) {
            S.ctl_changed = true;
            if (b >= end || !qdb_path_ok(a, false) ||
                !qdb_data_ok(b, strlen(b)) || db_write(a, b) < 0)
                return false;
            push(QDB_CMD_WRITE, a, b);
            p = b + strlen(b) + 1;
        } else {
            return false;
        }
    }
    return true;
}

static void ctl_finish(void)
{
    S.ctl_waiting = false;
    (void)!write(S.ctl, S.ctl_out.p, S.ctl_out.len);
    close(S.ctl);
    S.ctl = -1;
    S.ctl_in.len = S.ctl_out.len = 0;
}

static long ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 +
           (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void ctl_check_done(void)
{
    if (!S.ctl_waiting)
        return;
    if (S.pending_acks == 0 || S.vm < 0) {
        if (S.ctl_changed)
            ctl_reply("ok\n");
        ctl_finish();
    } else if (ms_since(&S.ctl_since) > ACK_TIMEOUT_MS) {
        ctl_reply("error: vm did not acknowledge %u messages\n",
                  S.pending_acks);
        ctl_finish();
    }
}

static void ctl_input(void)
{
    uint8_t tmp[65536];
    ssize_t n = read(S.ctl, tmp, sizeof(tmp));

    if (n > 0) {
        buf_add(&S.ctl_in, tmp, (size_t)n);
        return;
    }
    if (n < 0 && errno == EINTR)
        return;
    /* EOF: the request is complete. */
    if (!ctl_apply()) {
        S.ctl_out.len = 0;
        ctl_reply("error: malformed request\n");
        ctl_finish();
        return;
    }
    S.ctl_waiting = true;
    clock_gettime(CLOCK_MONOTONIC, &S.ctl_since);
}

/* --- serve -----------------------------------------------------------------
 */

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
        return -1;
    return fd;
}

static void vm_io(short rev)
{
    uint8_t tmp[65536];

    if (rev & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = read(S.vm, tmp, sizeof(tmp));

        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            vm_close(n == 0 ? "vm closed it" : strerror(errno));
            return;
        }
        if (n > 0) {
            buf_add(&S.vm_in, tmp, (size_t)n);
            vm_input();
        }
    }
    if (S.vm >= 0 && S.vm_out.len && (rev & POLLOUT)) {
        ssize_t n =
            send(S.vm, S.vm_out.p, S.vm_out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            buf_drop(&S.vm_out, (size_t)n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            vm_close(strerror(errno));
    }
}

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

static int serve(const char *db, const char *vmsock, const char *ctlsock)
{
    S.vm = S.ctl = -1;
    if (db && db_load(db) < 0)
        return 1;
    S.vm_listen = listen_unix(vmsock);
    S.ctl_listen = listen_unix(ctlsock);
    if (S.vm_listen < 0 || S.ctl_listen < 0) {
        say("cannot listen: %s", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    say("serving %u keys on %s (control %s)", S.nkeys, vmsock, ctlsock);
    while (!stop) {
        struct pollfd p[4] = {
            {S.vm_listen, POLLIN, 0},
            {S.ctl < 0 ? S.ctl_listen : -1, POLLIN, 0},
            {S.vm, (short)(POLLIN | (S.vm_out.len ? POLLOUT : 0)), 0},
            {S.ctl_waiting ? -1 : S.ctl, POLLIN, 0},
        };

        if (poll(p, 4, S.ctl_waiting ? 50 : 1000) < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN) {
            int fd = accept4(S.vm_listen, NULL, NULL, SOCK_CLOEXEC);

            if (fd >= 0) {
                vm_close("vm reconnected");
                S.vm = fd;
                S.connections++;
                say("vm: connected");
            }
        }
        if (p[1].revents & POLLIN)
            S.ctl = accept4(S.ctl_listen, NULL, NULL, SOCK_CLOEXEC);
        if (S.vm >= 0 && p[2].revents)
            vm_io(p[2].revents);
        if (S.ctl >= 0 && !S.ctl_waiting && p[3].revents)
            ctl_input();
        ctl_check_done();
    }
    unlink(vmsock);
    unlink(ctlsock);
    return 0;
}

/* --- ctl client ----------------------------------------------------------- */

static void put(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s) + 1);
}

static void op_w(struct buf *b, const char *path, const char *value)
{
    put(b, "W");
    put(b, path);
    put(b, value);
}

static void op_r(struct buf *b, const char *path)
{
    put(b, "R");
    put(b, path);
}

/*
 * load-rules IP FILE: what dom0 does for one client (6.3): rm the
 * directory, write policy and the numbered rules, then the empty commit.
 * FILE: one rule per line, numbered 0000, 0001, ...; "NNNN: rule" sets the
 * number (gaps allowed, later lines continue from it); "policy: VALUE"
 * sets the policy (default drop), "policy: -" leaves it out; '#' comments.
 */
static int build_rules(struct buf *b, const char *ip, const char *file)
{
    char line[4096], dir[128], key[160];
    const char *policy = "drop";
    char policy_buf[256];
    unsigned next = 0;
    struct buf rules = {0};
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;

    if (!f) {
        fprintf(stderr, "qdb-dom0: %s: %s\n", file, strerror(errno));
        return -1;
    }
    snprintf(dir, sizeof(dir), "/qubes-firewall/%s", ip);
    while (fgets(line, sizeof(line), f)) {
        char *l = line + strspn(line, " \t");
        unsigned no;

        l[strcspn(l, "\n")] = '\0';
        if (*l == '#' || *l == '\0')
            continue;
        if (strncmp(l, "policy:", 7) == 0) {
            l += 7;
            l += strspn(l, " ");
            snprintf(policy_buf, sizeof(policy_buf), "%s", l);
            policy = strcmp(policy_buf, "-") ? policy_buf : NULL;
            continue;
        }
        if (sscanf(l, "%4u:", &no) == 1 && strlen(l) > 5 && l[4] == ':') {
            next = no;
            l += 5;
            l += strspn(l, " ");
        }
        snprintf(key, sizeof(key), "%s/%04u", dir, next++);
        op_w(&rules, key, l);
    }
    if (f != stdin)
        fclose(f);
    snprintf(key, sizeof(key), "%s/", dir);
    op_r(b, key);
    if (policy) {
        snprintf(key, sizeof(key), "%s/policy", dir);
        op_w(b, key, policy);
    }
    if (rules.len)
        buf_add(b, rules.p, rules.len);
    free(rules.p);
    op_w(b, dir, "");
    return 0;
}

static int build_request(struct buf *b, int argc, char **argv)
{
    const char *cmd = argv[0];
    char key[160];

    if (!strcmp(cmd, "write") && argc == 3) {
        op_w(b, argv[1], argv[2]);
    } else if (!strcmp(cmd, "rm") && argc == 2) {
        op_r(b, argv[1]);
    } else if (!strcmp(cmd, "commit") && argc == 2) {
        op_w(b, argv[1], "");
    } else if (!strcmp(cmd, "load-rules") && argc == 3) {
        return build_rules(b, argv[1], argv[2]);
    } else if (!strcmp(cmd, "vif-add") && argc == 5) {
        /* ifname last: its presence means the vif is ready (hosted.md) */
        snprintf(key, sizeof(key), "/qwall-hosted/vif/%s/ip", argv[1]);
        op_w(b, key, argv[2]);
        snprintf(key, sizeof(key), "/qwall-hosted/vif/%s/mac", argv[1]);
        op_w(b, key, argv[3]);
        snprintf(key, sizeof(key), "/qwall-hosted/vif/%s/ifname", argv[1]);
        op_w(b, key, argv[4]);
    } else if (!strcmp(cmd, "vif-rm") && argc == 2) {
        snprintf(key, sizeof(key), "/qwall-hosted/vif/%s/", argv[1]);
        op_r(b, key);
    } else if ((!strcmp(cmd, "dump") || !strcmp(cmd, "stats")) && argc == 1) {
        put(b, "Q");
        put(b, cmd);
    } else {
        return -1;
    }
    return 0;
}

static int ctl_call(const char *sock, const struct buf *req, struct buf *ans)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char tmp[4096];
    ssize_t n;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "qdb-dom0: cannot connect to %s: %s\n", sock,
                strerror(errno));
        return -1;
    }
    if (write(fd, req->p, req->len) != (ssize_t)req->len) {
        close(fd);
        return -1;
    }
    shutdown(fd, SHUT_WR);
    while ((n = read(fd, tmp, sizeof(tmp))) > 0)
        buf_add(ans, tmp, (size_t)n);
    close(fd);
    return 0;
}

static int wait_synced(const char *sock, double secs)
{
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct buf req = {0}, ans = {0};
        bool ok;

        put(&req, "Q");
        put(&req, "synced");
        ok = ctl_call(sock, &req, &ans) == 0 && ans.len >= 6 &&
             memcmp(ans.p, "synced", 6) == 0;
        free(req.p);
        free(ans.p);
        if (ok)
            return 0;
        if (ms_since(&t0) > secs * 1000) {
            fprintf(stderr, "qdb-dom0: vm not synced after %.1f s\n", secs);
            return 1;
        }
        usleep(50000);
    }
}

static int ctl_main(int argc, char **argv)
{
    struct buf req = {0}, ans = {0};
    int rc;

    if (argc >= 2 && !strcmp(argv[1], "wait-synced"))
        return wait_synced(argv[0], argc > 2 ? atof(argv[2]) : 10.0);
    if (argc < 2 || build_request(&req, argc - 1, argv + 1) < 0) {
        fprintf(stderr, "qdb-dom0: bad ctl command\n");
        return 2;
    }
    if (ctl_call(argv[0], &req, &ans) < 0)
        return 1;
    fwrite(ans.p, 1, ans.len, stdout);
    rc = ans.len >= 6 && memcmp(ans.p, "error:", 6) == 0 ? 1 : 0;
    free(req.p);
    free(ans.p);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: qdb-dom0 serve [--db FILE] --vm VMSOCK --ctl CTLSOCK "
               "[-v]\n"
               "       qdb-dom0 ctl CTLSOCK write PATH VALUE | rm PATH | "
               "commit DIR\n"
               "                | load-rules IP FILE | vif-add NAME IP MAC "
               "IFNAME | vif-rm NAME\n"
               "                | dump | stats | wait-synced [SECS]\n");
}

int main(int argc, char **argv)
{
    const char *db = NULL, *vm = NULL, *ctl = NULL;
    int i;

    if (argc >= 3 && !strcmp(argv[1], "ctl"))
        return ctl_main(argc - 2, argv + 2);
    /* Asked-for help is not an error: stdout, exit 0. */
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
                      !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "serve") != 0) {
        usage(stderr);
        return 2;
    }
    for (i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strcmp(argv[i], "--vm") && i + 1 < argc)
            vm = argv[++i];
        else if (!strcmp(argv[i], "--ctl") && i + 1 < argc)
            ctl = argv[++i];
        else if (!strcmp(argv[i], "-v"))
            S.verbose = true;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!vm || !ctl) {
        usage(stderr);
        return 2;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    return serve(db, vm, ctl);
}
