/* Drives the rustls TLS IO of libhsm_abi exactly as the SDK's transports do: create with a
 * TLSIO_CONFIG, setoption (TrustedCerts, x509 certificate and key), open with callbacks, a
 * dowork loop, send, receive, close, destroy; and checks the callbacks' order.
 *
 * usage: test_tlsio [options] HOST PORT
 *   --trusted FILE        TrustedCerts from a PEM file
 *   --cert FILE           client certificate chain (PEM file)
 *   --key VALUE           client key option value (an alias-key token)
 *   --key-file FILE       client key option value read from a file (a PEM key, compatibility)
 *   --ecc                 use the MQTT option names (x509EccCertificate, x509EccAliasKey)
 *   --tls VERSION         tls_version option (12 or 13)
 *   --underlying          bytes go through an underlying IO (tests/c/tlsio/socket_xio.c)
 *   --send FILE           send this file's bytes once open
 *   --expect TEXT         received bytes must contain TEXT; then close
 *   --expect-open-error   the open must complete with IO_OPEN_ERROR
 *   --expect-io-error     the open must succeed, then on_io_error must come
 *   --close-during-open   close right after open: IO_OPEN_CANCELLED, then close complete
 *   --secret FILE         no line of this PEM private key may be in any option string
 *   --retrieve            (needs the OptionHandler API linked) copy the options with
 *                         retrieveoptions, feed them into a second IO and run the exchange on it
 *   --bad-key VALUE       setoption of this key value must fail (then nothing else is done)
 *   --destroy-in-callback open, then close with a close callback that destroys the IO (the
 *                         library frees it when the close returns)
 *   --from-hsm            take the certificate and key option values from the SDK's x509 HSM
 *                         interface of libhsm_abi (get_cert, get_key; HSM_ABI_CONFIG), as the
 *                         SDK's provisioning client does
 * Exit status 0 when every check passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef WITH_OPTION_HANDLER
#include "option_handler.h"
#endif
#include "hsm_abi.h"
#include "hsm_client_data.h"
#include "socket_xio.h"
#include "tlsio_rustls.h"

static int failures = 0;
#define CHECK(cond)                                                                                 \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            failures++;                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
                    last_error());                                                                  \
        }                                                                                           \
    } while (0)

static const char* last_error(void)
{
    static char buf[2048];
    hsm_abi_last_error(buf, sizeof buf);
    return buf;
}

typedef struct {
    char events[64]; /* O open ok, E open error, C cancelled, B bytes, S send ok, s send failed, X io error, Z closed */
    size_t n_events;
    char* received;
    size_t received_len;
    char open_error[2048];
} STATE;

static void event(STATE* st, char e)
{
    if (st->n_events + 1 < sizeof st->events && (e != 'B' || st->n_events == 0 || st->events[st->n_events - 1] != 'B')) {
        st->events[st->n_events++] = e;
        st->events[st->n_events] = '\0';
    }
}

static void on_open_complete(void* ctx, IO_OPEN_RESULT r)
{
    STATE* st = ctx;
    event(st, r == IO_OPEN_OK ? 'O' : r == IO_OPEN_ERROR ? 'E' : r == IO_OPEN_CANCELLED ? 'C' : '?');
    if (r == IO_OPEN_ERROR) {
        /* The cause is this thread's last error while the callback runs. */
        snprintf(st->open_error, sizeof st->open_error, "%s", last_error());
    }
}

static void on_bytes_received(void* ctx, const unsigned char* buffer, size_t size)
{
    STATE* st = ctx;
    char* grown = realloc(st->received, st->received_len + size + 1);
    if (grown == NULL) {
        return;
    }
    memcpy(grown + st->received_len, buffer, size);
    st->received = grown;
    st->received_len += size;
    st->received[st->received_len] = '\0';
    event(st, 'B');
}

static void on_io_error(void* ctx)
{
    STATE* st = ctx;
    event(st, 'X');
    snprintf(st->open_error, sizeof st->open_error, "%s", last_error());
}

static void on_send_complete(void* ctx, IO_SEND_RESULT r)
{
    event(ctx, r == IO_SEND_OK ? 'S' : 's');
}

static void on_close_complete(void* ctx)
{
    event(ctx, 'Z');
}

static char* read_file(const char* path)
{
    FILE* f = fopen(path, "rb");
    char* buf;
    long len;
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    if (buf != NULL && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL) {
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

/* Every line of the secret PEM's base64 body; none may appear in an option string. */
static char* g_secret = NULL;
static int g_option_strings_checked = 0;

static int holds_secret(const char* value)
{
    const char* line;
    if (strstr(value, "PRIVATE KEY") != NULL) {
        return 1;
    }
    if (g_secret == NULL) {
        return 0;
    }
    for (line = g_secret; *line != '\0';) {
        const char* end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len >= 16 && strncmp(line, "-----", 5) != 0) {
            char* piece = strndup(line, len);
            int found = piece != NULL && strstr(value, piece) != NULL;
            free(piece);
            if (found) {
                return 1;
            }
        }
        line = end != NULL ? end + 1 : line + len;
    }
    return 0;
}

static int set_string(const IO_INTERFACE_DESCRIPTION* io, CONCRETE_IO_HANDLE h, const char* name, const char* value,
                      int may_hold_key)
{
    if (!may_hold_key) {
        CHECK(!holds_secret(value));
        g_option_strings_checked++;
    }
    return io->concrete_io_setoption(h, name, value);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* dowork until `done` holds or 15 s pass. */
static int pump(const IO_INTERFACE_DESCRIPTION* io, CONCRETE_IO_HANDLE h, STATE* st, int (*done)(const STATE*))
{
    double deadline = now() + 15.0;
    while (!done(st)) {
        if (now() > deadline) {
            fprintf(stderr, "timed out; events so far: \"%s\"\n", st->events);
            return 0;
        }
        io->concrete_io_dowork(h);
        usleep(1000);
    }
    return 1;
}

static int has_open_result(const STATE* st)
{
    return strpbrk(st->events, "OEC") != NULL;
}

static int has_io_error(const STATE* st)
{
    return strchr(st->events, 'X') != NULL;
}

static const char* g_expect = NULL;
static int has_expected(const STATE* st)
{
    return has_io_error(st) || (st->received != NULL && strstr(st->received, g_expect) != NULL);
}

typedef struct {
    const char* host;
    int port;
    const char* trusted;
    const char* cert;
    const char* key;
    int key_is_pem;
    int ecc;
    int tls;
    int underlying;
    const char* send;
    const char* expect;
    int expect_open_error;
    int expect_io_error;
    int close_during_open;
    int retrieve;
    const char* bad_key;
    int from_hsm;
    int destroy_in_callback;
} ARGS;

static CONCRETE_IO_HANDLE create(const IO_INTERFACE_DESCRIPTION* io, const ARGS* a, SOCKET_XIO_CONFIG* sx)
{
    TLSIO_CONFIG cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hostname = a->host;
    cfg.port = a->port;
    if (a->underlying) {
        sx->host = "127.0.0.1";
        sx->port = a->port;
        cfg.underlying_io_interface = socket_xio_interface();
        cfg.underlying_io_parameters = sx;
    }
    return io->concrete_io_create(&cfg);
}

/* Open, exchange, close on an IO whose options are set. */
static void run(const IO_INTERFACE_DESCRIPTION* io, CONCRETE_IO_HANDLE h, const ARGS* a)
{
    STATE st;
    memset(&st, 0, sizeof st);
    if (io->concrete_io_open(h, on_open_complete, &st, on_bytes_received, &st, on_io_error, &st) != 0) {
        /* Failed at once (a key that cannot be resolved, a refused connection): as the SDK's
         * socket and OpenSSL IOs do, the open callback said IO_OPEN_ERROR before open returned
         * non-zero; the IO is closed again. */
        CHECK(strcmp(st.events, "E") == 0);
        CHECK(a->expect_open_error);
        CHECK(st.open_error[0] != '\0');
        fprintf(stderr, "open failed at once as expected: %s\n", st.open_error);
        CHECK(io->concrete_io_close(h, on_close_complete, &st) == 0);
        CHECK(strcmp(st.events, "E") == 0);
        return;
    }
    /* An open that returned 0 has called nothing yet: its result comes from a later dowork
     * (a caller such as the SDK's MQTT transport overwrites what a callback inside open said). */
    CHECK(st.n_events == 0);
    /* A second open while opening is refused and changes nothing. */
    CHECK(io->concrete_io_open(h, on_open_complete, &st, on_bytes_received, &st, on_io_error, &st) != 0);
    if (a->close_during_open) {
        io->concrete_io_dowork(h);
        CHECK(io->concrete_io_close(h, on_close_complete, &st) == 0);
        CHECK(strcmp(st.events, "CZ") == 0);
        fprintf(stderr, "events: %s\n", st.events);
        return;
    }
    pump(io, h, &st, has_open_result);
    if (a->expect_open_error) {
        CHECK(strcmp(st.events, "E") == 0);
        CHECK(st.open_error[0] != '\0');
        fprintf(stderr, "open failed as expected: %s\n", st.open_error);
        /* Closing after a failed open is allowed and calls nothing. */
        CHECK(io->concrete_io_close(h, on_close_complete, &st) == 0);
        CHECK(strcmp(st.events, "E") == 0);
        return;
    }
    CHECK(st.events[0] == 'O' && strchr(st.events, 'E') == NULL);
    if (a->expect_io_error) {
        if (a->send != NULL) {
            char* data = read_file(a->send);
            if (data != NULL) {
                io->concrete_io_send(h, data, strlen(data), on_send_complete, &st);
                free(data);
            }
        }
        pump(io, h, &st, has_io_error);
        CHECK(has_io_error(&st));
        CHECK(strchr(st.events, 'E') == NULL);
        fprintf(stderr, "error after open as expected: %s\n", st.open_error);
        CHECK(io->concrete_io_close(h, on_close_complete, &st) == 0);
        CHECK(st.events[st.n_events - 1] == 'Z');
        return;
    }
    if (a->send != NULL) {
        char* data = read_file(a->send);
        CHECK(data != NULL);
        if (data != NULL) {
            CHECK(io->concrete_io_send(h, data, strlen(data), on_send_complete, &st) == 0);
            free(data);
        }
    }
    if (a->expect != NULL) {
        g_expect = a->expect;
        pump(io, h, &st, has_expected);
        CHECK(st.received != NULL && strstr(st.received, a->expect) != NULL);
        CHECK(strncmp(st.events, "OSB", 3) == 0);
    }
    fprintf(stderr, "received: %.300s\n", st.received != NULL ? st.received : "(nothing)");
    CHECK(io->concrete_io_close(h, on_close_complete, &st) == 0);
    CHECK(st.events[st.n_events - 1] == 'Z');
    /* Send after close fails. */
    CHECK(io->concrete_io_send(h, "x", 1, on_send_complete, &st) != 0);
    fprintf(stderr, "events: %s\n", st.events);
    free(st.received);
}

typedef struct {
    const IO_INTERFACE_DESCRIPTION* io;
    CONCRETE_IO_HANDLE h;
    STATE* st;
    int destroyed;
} DESTROY_CTX;

static void on_close_destroy(void* ctx)
{
    DESTROY_CTX* d = ctx;
    event(d->st, 'Z');
    d->io->concrete_io_destroy(d->h);
    d->destroyed++;
}

/* The SDK may destroy an IO from one of its callbacks: nothing may touch it afterwards. */
static void destroy_in_callback(const IO_INTERFACE_DESCRIPTION* io, CONCRETE_IO_HANDLE h)
{
    STATE st;
    DESTROY_CTX d;
    memset(&st, 0, sizeof st);
    d.io = io;
    d.h = h;
    d.st = &st;
    d.destroyed = 0;
    CHECK(io->concrete_io_open(h, on_open_complete, &st, on_bytes_received, &st, on_io_error, &st) == 0);
    io->concrete_io_dowork(h);
    CHECK(io->concrete_io_close(h, on_close_destroy, &d) == 0);
    CHECK(d.destroyed == 1);
    CHECK(strcmp(st.events, "CZ") == 0);
    fprintf(stderr, "events: %s\n", st.events);
}

static void set_options(const IO_INTERFACE_DESCRIPTION* io, CONCRETE_IO_HANDLE h, const ARGS* a)
{
    if (a->trusted != NULL) {
        char* pem = read_file(a->trusted);
        CHECK(pem != NULL && set_string(io, h, "TrustedCerts", pem, 0) == 0);
        free(pem);
    }
    if (a->cert != NULL) {
        char* pem = read_file(a->cert);
        CHECK(pem != NULL && set_string(io, h, a->ecc ? "x509EccCertificate" : "x509certificate", pem, 0) == 0);
        free(pem);
    }
    if (a->key != NULL) {
        char* value = a->key_is_pem ? read_file(a->key) : strdup(a->key);
        CHECK(value != NULL &&
              set_string(io, h, a->ecc ? "x509EccAliasKey" : "x509privatekey", value, a->key_is_pem) == 0);
        free(value);
    }
    if (a->from_hsm) {
        /* The SDK's order: x509 interface, create, get_common_name, get_cert, get_key. */
        const HSM_CLIENT_X509_INTERFACE* x509;
        HSM_CLIENT_HANDLE hh;
        CHECK(hsm_client_x509_init() == 0);
        x509 = hsm_client_x509_interface();
        hh = x509 != NULL ? x509->hsm_client_x509_create() : NULL;
        CHECK(hh != NULL);
        if (hh != NULL) {
            char* cn = x509->hsm_client_get_common_name(hh);
            char* cert = x509->hsm_client_get_cert(hh);
            char* key = x509->hsm_client_get_key(hh);
            CHECK(cn != NULL && cert != NULL && key != NULL);
            if (cn != NULL && cert != NULL && key != NULL) {
                fprintf(stderr, "HSM identity %s, key option %s\n", cn, key);
                CHECK(set_string(io, h, "x509certificate", cert, 0) == 0);
                CHECK(set_string(io, h, "x509privatekey", key, 0) == 0);
            }
            free(cn);
            free(cert);
            free(key);
            x509->hsm_client_x509_destroy(hh);
        }
        hsm_client_x509_deinit();
    }
    if (a->tls != 0) {
        CHECK(io->concrete_io_setoption(h, "tls_version", &a->tls) == 0);
    }
    if (a->underlying) {
        /* An option the TLS layer does not know goes to the underlying IO. */
        CHECK(io->concrete_io_setoption(h, "socket_xio_test_option", "x") == 0);
        CHECK(io->concrete_io_setoption(h, "no_such_option", "x") != 0);
    } else {
        CHECK(io->concrete_io_setoption(h, "no_such_option", "x") == HSM_ABI_ERR_UNSUPPORTED);
        CHECK(strstr(last_error(), "no_such_option") != NULL);
    }
}

#ifdef WITH_OPTION_HANDLER
/* retrieveoptions: the copy holds the options but never a secret; fed into a new IO, it works. */
static void retrieve_and_rerun(const IO_INTERFACE_DESCRIPTION* io, CONCRETE_IO_HANDLE h, const ARGS* a)
{
    OPTIONHANDLER_HANDLE oh = io->concrete_io_retrieveoptions(h);
    SOCKET_XIO_CONFIG sx;
    CONCRETE_IO_HANDLE h2;
    size_t i, n;
    int has_trusted = 0, has_key = 0;
    CHECK(oh != NULL);
    if (oh == NULL) {
        return;
    }
    n = option_handler_count(oh);
    for (i = 0; i < n; i++) {
        const char* name = option_handler_name(oh, i);
        fprintf(stderr, "retrieved option %s\n", name);
        has_trusted |= strcmp(name, "TrustedCerts") == 0;
        has_key |= strcmp(name, "x509privatekey") == 0;
        if (strcmp(name, "tls_version") != 0) {
            CHECK(!holds_secret(option_handler_value(oh, i)));
            g_option_strings_checked++;
        }
    }
    CHECK(has_trusted);
    CHECK(has_key == (a->key != NULL && !a->key_is_pem));
    h2 = create(io, a, &sx);
    CHECK(h2 != NULL);
    if (h2 != NULL) {
        CHECK(OptionHandler_FeedOptions(oh, h2) == OPTIONHANDLER_OK);
        if (!a->key_is_pem) {
            run(io, h2, a);
        }
        io->concrete_io_destroy(h2);
    }
    OptionHandler_Destroy(oh);
}
#endif

int main(int argc, char** argv)
{
    ARGS a;
    const IO_INTERFACE_DESCRIPTION* io;
    CONCRETE_IO_HANDLE h;
    SOCKET_XIO_CONFIG sx;
    int i;
    memset(&a, 0, sizeof a);
    for (i = 1; i < argc; i++) {
        const char* o = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--trusted") == 0 && v) {
            a.trusted = v, i++;
        } else if (strcmp(o, "--cert") == 0 && v) {
            a.cert = v, i++;
        } else if (strcmp(o, "--key") == 0 && v) {
            a.key = v, i++;
        } else if (strcmp(o, "--key-file") == 0 && v) {
            a.key = v, a.key_is_pem = 1, i++;
        } else if (strcmp(o, "--ecc") == 0) {
            a.ecc = 1;
        } else if (strcmp(o, "--tls") == 0 && v) {
            a.tls = atoi(v), i++;
        } else if (strcmp(o, "--underlying") == 0) {
            a.underlying = 1;
        } else if (strcmp(o, "--send") == 0 && v) {
            a.send = v, i++;
        } else if (strcmp(o, "--expect") == 0 && v) {
            a.expect = v, i++;
        } else if (strcmp(o, "--expect-open-error") == 0) {
            a.expect_open_error = 1;
        } else if (strcmp(o, "--expect-io-error") == 0) {
            a.expect_io_error = 1;
        } else if (strcmp(o, "--close-during-open") == 0) {
            a.close_during_open = 1;
        } else if (strcmp(o, "--retrieve") == 0) {
            a.retrieve = 1;
        } else if (strcmp(o, "--secret") == 0 && v) {
            g_secret = read_file(v), i++;
        } else if (strcmp(o, "--destroy-in-callback") == 0) {
            a.destroy_in_callback = 1;
        } else if (strcmp(o, "--from-hsm") == 0) {
            a.from_hsm = 1;
        } else if (strcmp(o, "--bad-key") == 0 && v) {
            a.bad_key = v, i++;
        } else if (o[0] != '-' && a.host == NULL) {
            a.host = o;
        } else if (o[0] != '-' && a.port == 0) {
            a.port = atoi(o);
        } else {
            fprintf(stderr, "bad argument %s (see the comment at the top of test_tlsio.c)\n", o);
            return 2;
        }
    }
    if (a.host == NULL || a.port == 0) {
        fprintf(stderr, "usage: %s [options] HOST PORT\n", argv[0]);
        return 2;
    }

    io = tlsio_rustls_get_interface_description();
    CHECK(io != NULL && io == tlsio_rustls_get_interface_description());
    CHECK(io->concrete_io_create(NULL) == NULL);
    h = create(io, &a, &sx);
    CHECK(h != NULL);
    if (h == NULL) {
        return 1;
    }
    if (a.bad_key != NULL) {
        CHECK(io->concrete_io_setoption(h, a.ecc ? "x509EccAliasKey" : "x509privatekey", a.bad_key) != 0);
        fprintf(stderr, "setoption refused the key as expected: %s\n", last_error());
        io->concrete_io_destroy(h);
        CHECK(socket_xio_instances == 0);
        return failures == 0 ? 0 : 1;
    }
    set_options(io, h, &a);
    if (a.destroy_in_callback) {
        destroy_in_callback(io, h);
        CHECK(socket_xio_instances == 0);
        free(g_secret);
        return failures == 0 ? 0 : 1;
    }
    run(io, h, &a);
#ifdef WITH_OPTION_HANDLER
    if (a.retrieve) {
        retrieve_and_rerun(io, h, &a);
    }
#else
    /* Without the SDK's OptionHandler linked in, retrieveoptions reports it and returns NULL. */
    CHECK(io->concrete_io_retrieveoptions(h) == NULL);
    CHECK(strstr(last_error(), "OptionHandler") != NULL);
#endif
    io->concrete_io_destroy(h);
    CHECK(socket_xio_instances == 0);
    fprintf(stderr, "%d option strings checked for private key bytes\n", g_option_strings_checked);
    free(g_secret);
    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
    }
    return failures == 0 ? 0 : 1;
}
