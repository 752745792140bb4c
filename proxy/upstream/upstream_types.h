/* upstream_types: the words shared by the upstream interface (upstream.h)
 * and the clients behind it (upstream_backend.h): a request to send, what
 * the caller is told while its answer comes, and the opaque handles. Types
 * only; no code. */
#ifndef RETRYD_UPSTREAM_TYPES_H
#define RETRYD_UPSTREAM_TYPES_H

#include <stddef.h>

typedef struct {
  const char *method;
  const char *target;  /* origin-form; the upstream's path prefix goes before it */
  const char *headers; /* "Name: value\r\n" lines */
  size_t headers_len;
  const char *body;    /* NULL: the request had no body framing */
  size_t body_len;
} upstream_request_t;

/* What ops->body answers. */
enum {
  UPSTREAM_TAKEN = 0,  /* the bytes were used */
  UPSTREAM_PAUSE = 1,  /* not used: pause, and hand them over again after upstream_resume() */
  UPSTREAM_ABORT = -1, /* stop the transfer: it fails */
};

typedef enum {
  UPSTREAM_DONE,      /* the whole answer came */
  UPSTREAM_FAILED,    /* no answer, or a cut or malformed one */
  UPSTREAM_TIMEDOUT,  /* the connection could not be made in time */
} upstream_result_t;

typedef struct {
  /* The final head is in: 0 to read on, -1 to abort. */
  int (*head)(void *ctx);
  int (*body)(void *ctx, const char *data, size_t len);
  /* error says what went wrong (NULL when UPSTREAM_DONE). */
  void (*done)(void *ctx, upstream_result_t result, const char *error);
  /* Optional: the request died on a kept-alive connection before any byte
   * of an answer and is being sent again at once on a new one (why says
   * what happened). That was an attempt without an answer: callers count
   * and log it (upstream_note_resent). Only the http:// client reports it;
   * libcurl resends the same way without telling. */
  void (*resent)(void *ctx, const char *why);
} upstream_ops_t;

/* One upstream origin and the client that speaks to it (upstream.h). */
typedef struct upstream_s upstream_t;
/* One request on its way (upstream.h). */
typedef struct upstream_xfer_s upstream_xfer_t;

#endif
