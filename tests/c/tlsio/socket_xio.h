/* A plain TCP IO for the tests: the "underlying IO" given to the rustls TLS IO. */
#ifndef TLSIO_TEST_SOCKET_XIO_H
#define TLSIO_TEST_SOCKET_XIO_H

#include "tlsio_rustls.h"

typedef struct {
    const char* host;
    int port;
} SOCKET_XIO_CONFIG;

const IO_INTERFACE_DESCRIPTION* socket_xio_interface(void);

/* Live instances (created and not destroyed): the TLS IO must destroy what it created. */
extern int socket_xio_instances;

#endif
