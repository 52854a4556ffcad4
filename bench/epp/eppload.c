/*
 * eppload.c - an open-loop HTTP/1.1 load generator for make bench-epp's
 * added-latency part: one thread, epoll, kept-alive connections, so that
 * the measuring side costs little CPU and no GIL on a 2-core machine.
 *
 *   eppload HOST PORT MAXCONN IN OUT
 *
 * IN (written by bench_epp.py): "N\n", then per request
 * "ARRIVAL_NS LEN\n" and LEN bytes of a complete HTTP/1.1 request;
 * arrivals are offsets from the start, non-decreasing. A request is sent
 * at its arrival on an idle connection (a new one while fewer than MAXCONN
 * are open, else it waits for one: its latencies still count from its
 * arrival). OUT, per request in order: "INDEX STATUS TTFT_NS E2E_NS
 * ATTEMPTS BODYLEN\n" then the response body (de-chunked) of BODYLEN
 * bytes; STATUS 0 = no response (TTFT_NS, E2E_NS -1). TTFT is the first
 * response body byte, E2E the end of the body, both from the arrival. A
 * request whose kept-alive connection failed before any byte came back is
 * sent once more on a new connection (as the Python load generator does).
 * Exit status 0, or 2 with a message on stderr for bad arguments or input.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int64_t arrival; /* ns from start */
    char *raw;
    size_t len;
    int status, attempts;
    int64_t ttft, e2e;
    char *body;
    size_t blen, bcap;
} req_t;

typedef struct {
    int fd, busy, connected;
    long req;            /* index being served, -1 none */
    size_t sent;         /* bytes of the request written */
    char *buf;           /* received, not yet parsed */
    size_t blen, bcap;
    int hdr_done, chunked, close_after, got_any;
    long long clen;      /* content-length left (-1 unknown: read to close) */
    long long chunk;     /* bytes left in the current chunk; -1 reading a size line */
    int trailer;         /* after the 0 chunk: reading the final CRLF / trailers */
} conn_t;

static req_t *R;
static long NR;
static conn_t *C;
static int NC, MAXC, EP;
static struct sockaddr_in ADDR;
static int64_t T0;
static long *waitq, wq_head, wq_tail;
static long done_n;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "eppload: %s\n", what);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        die("out of memory");
    return q;
}

static void body_add(req_t *r, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (r->ttft < 0)
        r->ttft = now_ns() - T0 - r->arrival;
    if (r->blen + n > r->bcap) {
        r->bcap = (r->blen + n) * 2;
        r->body = xrealloc(r->body, r->bcap);
    }
    memcpy(r->body + r->blen, p, n);
    r->blen += n;
}

static void conn_reset_parse(conn_t *c)
{
    c->blen = 0;
    c->hdr_done = c->chunked = c->close_after = c->got_any = c->trailer = 0;
    c->clen = -1;
    c->chunk = -1;
    c->sent = 0;
}

static int open_conn(void)
{
    int i;
    for (i = 0; i < NC; i++)
        if (C[i].fd < 0)
            break;
    if (i == MAXC)
        return -1; /* every place taken */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&ADDR, sizeof ADDR) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (i == NC)
        NC++;
    conn_t *c = &C[i];
    c->fd = fd;
    c->busy = 0;
    c->connected = 0;
    c->req = -1;
    conn_reset_parse(c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    if (epoll_ctl(EP, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    return i;
}

static void close_conn(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(EP, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = 0;
    c->req = -1;
}

static void want_out(conn_t *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - C)};
    epoll_ctl(EP, EPOLL_CTL_MOD, c->fd, &ev);
}

static void try_send(conn_t *c)
{
    req_t *r = &R[c->req];
    while (c->sent < r->len) {
        ssize_t w = send(c->fd, r->raw + c->sent, r->len - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                want_out(c, 1); /* the rest when it is writable */
            return;             /* other errors: the read side sees them */
        }
        c->sent += (size_t)w;
    }
    if (c->connected)
        want_out(c, 0);
}

static void start_on(int ci, long ri)
{
    conn_t *c = &C[ci];
    c->busy = 1;
    c->req = ri;
    conn_reset_parse(c);
    R[ri].attempts++;
    if (c->connected)
        try_send(c);
}

static int idle_conn(void)
{
    for (int i = 0; i < NC; i++)
        if (C[i].fd >= 0 && !C[i].busy)
            return i;
    return -1;
}

static int open_count(void)
{
    int n = 0;
    for (int i = 0; i < NC; i++)
        n += C[i].fd >= 0;
    return n;
}

static void dispatch(long ri)
{
    int ci = idle_conn();
    if (ci < 0 && open_count() < MAXC)
        ci = open_conn();
    if (ci < 0) {
        waitq[wq_tail++] = ri;
        return;
    }
    start_on(ci, ri);
}

static void finish_req(conn_t *c)
{
    req_t *r = &R[c->req];
    r->e2e = now_ns() - T0 - r->arrival;
    if (r->ttft < 0)
        r->ttft = r->e2e;
    done_n++;
    c->busy = 0;
    c->req = -1;
    int closing = c->close_after;
    /* anything after the response on a kept-alive connection is a protocol error */
    if (closing)
        close_conn(c);
    else
        conn_reset_parse(c);
    if (wq_head < wq_tail) {
        long ri = waitq[wq_head++];
        int ci = (c->fd >= 0) ? (int)(c - C) : -1;
        if (ci < 0)
            ci = open_conn();
        if (ci < 0) {
            R[ri].status = 0;
            done_n++;
        } else {
            start_on(ci, ri);
        }
    }
}

static void fail_conn(conn_t *c)
{
    long ri = c->req;
    int got = c->got_any;
    close_conn(c);
    if (wq_head < wq_tail) { /* a waiting request takes the freed place */
        int ci = open_conn();
        if (ci >= 0)
            start_on(ci, waitq[wq_head++]);
    }
    if (ri < 0)
        return;
    req_t *r = &R[ri];
    if (!got && r->attempts < 2) { /* a kept-alive connection the proxy closed: once more */
        int ci = open_conn();
        if (ci >= 0)
            start_on(ci, ri);
        else
            waitq[wq_tail++] = ri; /* the next free place */
        return;
    }
    /* no response, or not all of it (a body read to close ends in on_read) */
    r->status = 0;
    r->ttft = r->e2e = -1;
    done_n++;
}

/* parse what c->buf holds; returns 1 when the response is complete */
static int parse(conn_t *c)
{
    req_t *r = &R[c->req];
    size_t off = 0;
    if (!c->hdr_done) {
        char *e = memmem(c->buf, c->blen, "\r\n\r\n", 4);
        if (!e)
            return 0;
        size_t hl = (size_t)(e - c->buf) + 4;
        c->buf[hl - 1] = '\0';
        int maj, min, st;
        if (sscanf(c->buf, "HTTP/%d.%d %d", &maj, &min, &st) != 3)
            return -1;
        r->status = st;
        if (maj == 1 && min == 0)
            c->close_after = 1; /* HTTP/1.0: no keep-alive unless said (ignored here) */
        char *line = strstr(c->buf, "\r\n");
        while (line && line[2]) {
            line += 2;
            char *end = strstr(line, "\r\n");
            if (end)
                *end = '\0';
            if (strncasecmp(line, "content-length:", 15) == 0)
                c->clen = atoll(line + 15);
            else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strcasestr(line, "chunked"))
                c->chunked = 1;
            else if (strncasecmp(line, "connection:", 11) == 0 && strcasestr(line, "close"))
                c->close_after = 1;
            if (!end)
                break;
            *end = '\r';
            line = end;
        }
        c->hdr_done = 1;
        off = hl;
        if (!c->chunked && c->clen < 0)
            c->close_after = 1; /* read to close */
    }
    int complete = 0;
    if (!c->chunked) {
        size_t n = c->blen - off;
        if (c->clen >= 0 && (long long)n > c->clen)
            n = (size_t)c->clen;
        body_add(r, c->buf + off, n);
        off += n;
        if (c->clen >= 0) {
            c->clen -= (long long)n;
            complete = c->clen == 0;
        }
    } else {
        for (;;) {
            if (c->trailer) {
                char *e = memmem(c->buf + off, c->blen - off, "\r\n", 2);
                if (!e)
                    break;
                size_t ll = (size_t)(e - (c->buf + off));
                off += ll + 2;
                if (ll == 0) {
                    complete = 1;
                    break;
                }
                continue;
            }
            if (c->chunk < 0) {
                char *e = memmem(c->buf + off, c->blen - off, "\r\n", 2);
                if (!e)
                    break;
                c->chunk = strtoll(c->buf + off, NULL, 16);
                off = (size_t)(e - c->buf) + 2;
                if (c->chunk == 0) {
                    c->trailer = 1;
                    continue;
                }
                c->chunk += 2; /* its CRLF */
            }
            size_t avail = c->blen - off;
            if (avail == 0)
                break;
            size_t take = avail < (size_t)c->chunk ? avail : (size_t)c->chunk;
            size_t data = c->chunk > 2 ? (size_t)(c->chunk - 2) : 0;
            body_add(r, c->buf + off, take < data ? take : data);
            off += take;
            c->chunk -= (long long)take;
            if (c->chunk == 0)
                c->chunk = -1;
        }
    }
    memmove(c->buf, c->buf + off, c->blen - off);
    c->blen -= off;
    return complete;
}

static void on_read(conn_t *c)
{
    for (;;) {
        if (c->bcap - c->blen < 65536) {
            c->bcap = c->bcap * 2 + 65536;
            c->buf = xrealloc(c->buf, c->bcap);
        }
        ssize_t n = recv(c->fd, c->buf + c->blen, c->bcap - c->blen - 1, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail_conn(c);
            return;
        }
        if (n == 0) {
            if (c->busy && c->hdr_done && !c->chunked && c->clen < 0) {
                finish_req(c); /* a body read to close: that was its end (closes c) */
            } else if (c->busy)
                fail_conn(c);
            else
                close_conn(c);
            return;
        }
        if (!c->busy) { /* bytes nobody asked for */
            close_conn(c);
            return;
        }
        c->got_any = 1;
        c->blen += (size_t)n;
        int done = parse(c);
        if (done < 0) {
            fail_conn(c);
            return;
        }
        if (done) {
            int closing = c->close_after;
            finish_req(c);
            if (closing) /* c closed; its slot may hold a new connection by now */
                return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 6)
        die("usage: eppload HOST PORT MAXCONN IN OUT");
    memset(&ADDR, 0, sizeof ADDR);
    ADDR.sin_family = AF_INET;
    ADDR.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &ADDR.sin_addr) != 1)
        die("HOST must be an IPv4 address");
    MAXC = atoi(argv[3]);
    if (MAXC < 1 || MAXC > 4096)
        die("MAXCONN must be 1..4096");
    FILE *in = fopen(argv[4], "rb");
    if (!in)
        die("cannot open IN");
    if (fscanf(in, "%ld", &NR) != 1 || NR < 0 || fgetc(in) != '\n')
        die("IN: bad count");
    R = calloc((size_t)NR + 1, sizeof *R);
    waitq = calloc(2 * (size_t)NR + 1, sizeof *waitq); /* a retry queues a request twice at most */
    if (!R || !waitq)
        die("out of memory");
    for (long i = 0; i < NR; i++) {
        long long a;
        size_t len;
        if (fscanf(in, "%lld %zu", &a, &len) != 2 || fgetc(in) != '\n')
            die("IN: bad request line");
        R[i].arrival = a;
        R[i].len = len;
        R[i].raw = malloc(len ? len : 1);
        if (!R[i].raw || fread(R[i].raw, 1, len, in) != len)
            die("IN: short request");
        R[i].ttft = R[i].e2e = -1;
        if (i && R[i].arrival < R[i - 1].arrival)
            die("IN: arrivals must not decrease");
    }
    fclose(in);
    C = calloc((size_t)MAXC, sizeof *C);
    if (!C)
        die("out of memory");
    for (int i = 0; i < MAXC; i++)
        C[i].fd = -1;
    EP = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (EP < 0 || tfd < 0)
        die("epoll/timerfd");
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(EP, EPOLL_CTL_ADD, tfd, &tev);
    T0 = now_ns() + 1000000; /* 1 ms to settle */
    long next = 0;
    int64_t deadline_idle = 0;
    struct epoll_event evs[256];
    while (done_n < NR) {
        int64_t t = now_ns() - T0;
        while (next < NR && R[next].arrival <= t)
            dispatch(next++);
        if (next < NR) {
            int64_t at = T0 + R[next].arrival;
            struct itimerspec its = {{0, 0}, {(time_t)(at / 1000000000LL), (long)(at % 1000000000LL)}};
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(EP, evs, 256, 1000);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        if (n == 0 && next >= NR) { /* nothing for a second: give up after 60 s */
            if (!deadline_idle)
                deadline_idle = now_ns() + 60000000000LL;
            else if (now_ns() > deadline_idle)
                break;
        } else if (n > 0) {
            deadline_idle = 0;
        }
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u32 == UINT32_MAX) {
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* spurious: nothing to read */
                }
                continue;
            }
            conn_t *c = &C[evs[k].data.u32];
            if (c->fd < 0)
                continue;
            if (evs[k].events & EPOLLOUT) {
                if (!c->connected) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    if (err) {
                        fail_conn(c);
                        continue;
                    }
                    c->connected = 1;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[k].data.u32};
                    epoll_ctl(EP, EPOLL_CTL_MOD, c->fd, &ev);
                }
                if (c->busy)
                    try_send(c);
            }
            if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                on_read(c);
        }
    }
    FILE *out = fopen(argv[5], "wb");
    if (!out)
        die("cannot open OUT");
    for (long i = 0; i < NR; i++) {
        req_t *r = &R[i];
        if (r->e2e < 0)
            r->status = 0, r->ttft = -1;
        fprintf(out, "%ld %d %lld %lld %d %zu\n", i, r->status, (long long)r->ttft,
                (long long)r->e2e, r->attempts, r->blen);
        if (r->blen)
            fwrite(r->body, 1, r->blen, out);
    }
    if (fclose(out) != 0)
        die("cannot write OUT");
    return 0;
}
