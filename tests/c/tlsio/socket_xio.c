/* A plain TCP IO with the SDK's IO_INTERFACE_DESCRIPTION shape, used as the "underlying IO" of
 * the rustls TLS IO in the tests (the SDK passes its socket IO or an HTTP proxy IO there).
 * Non-blocking connect and receive driven by dowork; send writes everything before returning. */
#include "socket_xio.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    char* host;
    int port;
    int fd;
    int connecting;
    int open;
    ON_IO_OPEN_COMPLETE on_open;
    void* open_ctx;
    ON_BYTES_RECEIVED on_bytes;
    void* bytes_ctx;
    ON_IO_ERROR on_error;
    void* error_ctx;
} SOCKET_XIO;

int socket_xio_instances = 0;

static CONCRETE_IO_HANDLE sx_create(void* parameters)
{
    const SOCKET_XIO_CONFIG* cfg = parameters;
    SOCKET_XIO* s;
    if (cfg == NULL || cfg->host == NULL) {
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->host = strdup(cfg->host);
    s->port = cfg->port;
    s->fd = -1;
    socket_xio_instances++;
    return s;
}

static void sx_shut(SOCKET_XIO* s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    s->fd = -1;
    s->open = 0;
    s->connecting = 0;
}

static void sx_destroy(CONCRETE_IO_HANDLE h)
{
    SOCKET_XIO* s = h;
    if (s == NULL) {
        return;
    }
    sx_shut(s);
    free(s->host);
    free(s);
    socket_xio_instances--;
}

static int sx_open(CONCRETE_IO_HANDLE h, ON_IO_OPEN_COMPLETE on_open, void* open_ctx, ON_BYTES_RECEIVED on_bytes,
                   void* bytes_ctx, ON_IO_ERROR on_error, void* error_ctx)
{
    SOCKET_XIO* s = h;
    struct addrinfo hints, *res = NULL;
    char port[16];
    if (s == NULL || s->fd >= 0) {
        return 1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", s->port);
    if (getaddrinfo(s->host, port, &hints, &res) != 0 || res == NULL) {
        return 1;
    }
    s->fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (s->fd < 0) {
        freeaddrinfo(res);
        return 1;
    }
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    if (connect(s->fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
        freeaddrinfo(res);
        sx_shut(s);
        return 1;
    }
    freeaddrinfo(res);
    s->connecting = 1;
    s->on_open = on_open;
    s->open_ctx = open_ctx;
    s->on_bytes = on_bytes;
    s->bytes_ctx = bytes_ctx;
    s->on_error = on_error;
    s->error_ctx = error_ctx;
    return 0;
}

static int sx_close(CONCRETE_IO_HANDLE h, ON_IO_CLOSE_COMPLETE on_close, void* ctx)
{
    SOCKET_XIO* s = h;
    if (s == NULL) {
        return 1;
    }
    sx_shut(s);
    if (on_close != NULL) {
        on_close(ctx);
    }
    return 0;
}

static int sx_send(CONCRETE_IO_HANDLE h, const void* buffer, size_t size, ON_SEND_COMPLETE on_send, void* ctx)
{
    SOCKET_XIO* s = h;
    const unsigned char* p = buffer;
    if (s == NULL || !s->open) {
        return 1;
    }
    while (size > 0) {
        ssize_t n = send(s->fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {s->fd, POLLOUT, 0};
            poll(&pfd, 1, 1000);
            continue;
        }
        if (n <= 0) {
            return 1;
        }
        p += n;
        size -= (size_t)n;
    }
    if (on_send != NULL) {
        on_send(ctx, IO_SEND_OK);
    }
    return 0;
}

static void sx_dowork(CONCRETE_IO_HANDLE h)
{
    SOCKET_XIO* s = h;
    unsigned char buf[4096];
    if (s == NULL || s->fd < 0) {
        return;
    }
    if (s->connecting) {
        struct pollfd pfd = {s->fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&pfd, 1, 0) <= 0) {
            return;
        }
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        s->connecting = 0;
        if (err != 0) {
            sx_shut(s);
            s->on_open(s->open_ctx, IO_OPEN_ERROR);
            return;
        }
        s->open = 1;
        s->on_open(s->open_ctx, IO_OPEN_OK);
    }
    while (s->open) {
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n > 0) {
            s->on_bytes(s->bytes_ctx, buf, (size_t)n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            s->open = 0;
            s->on_error(s->error_ctx);
            break;
        }
    }
}

static int sx_setoption(CONCRETE_IO_HANDLE h, const char* name, const void* value)
{
    (void)h;
    (void)value;
    /* The one option this IO knows, to see options pass through the TLS IO. */
    return strcmp(name, "socket_xio_test_option") == 0 ? 0 : 1;
}

static OPTIONHANDLER_HANDLE sx_retrieveoptions(CONCRETE_IO_HANDLE h)
{
    (void)h;
    return NULL;
}

static const IO_INTERFACE_DESCRIPTION SOCKET_XIO_INTERFACE = {
    sx_retrieveoptions, sx_create, sx_destroy, sx_open, sx_close, sx_send, sx_dowork, sx_setoption,
};

const IO_INTERFACE_DESCRIPTION* socket_xio_interface(void)
{
    return &SOCKET_XIO_INTERFACE;
}
