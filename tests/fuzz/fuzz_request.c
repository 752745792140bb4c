/* Fuzz target: the client request path, without a socket.
 *
 * Arbitrary bytes go through request_parser, the module every client
 * connection parses with (http_conn feeds it what it reads): llhttp with no
 * lenient flag plus retryd's checks on the head, the trailers, the target
 * and the caps. The first input byte picks how the rest is cut into reads
 * (1 to 64 bytes each, or whole), since several checks carry state from
 * one read to the next (obs-fold, the CRLF after chunk data). Requests are
 * taken one after another as on a keep-alive connection (pipelining).
 *
 * Beyond "no crash, no leak, no UB" (ASan, UBSan), every request the parser
 * hands over must hold what retryd promises its handlers; a broken promise
 * aborts, so the fuzzer reports it:
 *   - the target is origin-form and visible ASCII;
 *   - every field name is a token and every value plain field content;
 *   - exactly one Host on HTTP/1.1, at most one Content-Length, never both
 *     Content-Length and Transfer-Encoding, and a Transfer-Encoding is chunked;
 *   - the body is within --max-body;
 *   - a refused request has a status retryd answers with and a JSON code.
 *
 * Built by the fuzz CMake (clang -fsanitize=fuzzer,address,undefined,
 * linked with retryd_core and llhttp). By hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. -Ibuild/generated \
 *     -I/usr/share/include/llhttp tests/fuzz/fuzz_request.c proxy/http/request_parser.c \
 *     proxy/http/request.c proxy/http/headers.c proxy/buf.c proxy/config.c proxy/units.c \
 *     /usr/share/llhttp/{llhttp,api,http}.c -lcurl -o fuzz_request
 *   mkdir -p work && ./fuzz_request work tests/fuzz/corpus/request
 * (config.c needs libcurl for URL parsing; the seed corpus stays read-only). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/config.h"
#include "proxy/http/request.h"
#include "proxy/http/request_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small caps, so inputs of a few KiB reach them. */
#define FUZZ_MAX_HEADER_BYTES 4096
#define FUZZ_MAX_BODY 8192

static void fuzz_fail(const char *what) {
  fprintf(stderr, "fuzz_request: broken promise: %s\n", what);
  abort();
}

static bool fuzz_is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* What every dispatched request must be, checked independently of how
 * request_parser checks it. */
static void fuzz_check_request(const request_t *r) {
  if (r->target.len == 0 || r->target.data[0] != '/')
    fuzz_fail("target not origin-form");
  for (size_t i = 0; i < r->target.len; i++) {
    unsigned char ch = (unsigned char)r->target.data[i];
    if (ch <= 0x20 || ch >= 0x7f)
      fuzz_fail("target byte outside visible ASCII");
  }
  const headers_t *h = &r->headers;
  for (size_t i = 0; i < h->count; i++) {
    const unsigned char *n = (const unsigned char *)headers_name(h, i);
    if (*n == '\0')
      fuzz_fail("empty field name");
    for (; *n; n++)
      if (!fuzz_is_tchar(*n))
        fuzz_fail("field name not a token");
    for (const unsigned char *v = (const unsigned char *)headers_value(h, i); *v; v++)
      if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
        fuzz_fail("control byte in a field value");
  }
  size_t hosts = headers_count_named(h, "host");
  if (hosts > 1 || (hosts == 0 && r->http_minor >= 1))
    fuzz_fail("Host count");
  size_t cls = headers_count_named(h, "content-length");
  size_t tes = headers_count_named(h, "transfer-encoding");
  if (cls > 1 || (cls > 0 && tes > 0) || tes > 1)
    fuzz_fail("ambiguous framing fields");
  if (tes == 1 && strcasecmp(headers_get(h, "transfer-encoding"), "chunked") != 0)
    fuzz_fail("Transfer-Encoding other than chunked");
  if (r->body.len > FUZZ_MAX_BODY)
    fuzz_fail("body over --max-body");
  if (r->http_major != 1)
    fuzz_fail("not HTTP/1.x");
}

static void fuzz_check_refusal(const request_parser_t *p) {
  int status = request_parser_status(p);
  if (status != 400 && status != 413 && status != 417 && status != 431)
    fuzz_fail("refusal status");
  if (request_parser_code(p) == NULL || request_parser_message(p) == NULL)
    fuzz_fail("refusal without code or message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static config_t cfg;
  static bool ready;
  if (!ready) {
    config_defaults(&cfg);
    cfg.max_header_bytes = FUZZ_MAX_HEADER_BYTES;
    cfg.max_body = FUZZ_MAX_BODY;
    ready = true;
  }
  if (size == 0)
    return 0;
  /* 0: the whole input as one read; n: reads of 1 + (n - 1) % 64 bytes. */
  size_t step = data[0] == 0 ? size : 1 + (size_t)(data[0] - 1) % 64;
  const char *in = (const char *)data + 1;
  size_t len = size - 1;

  request_t req;
  request_init(&req, &cfg);
  request_parser_t p;
  request_parser_init(&p, &req, &cfg);
  /* Like http_conn: bytes the parser did not take (a pipelined request)
   * are fed again before the next read is added. */
  size_t off = 0, avail = 0;
  bool again = false; /* after RP_HEAD: fed again even with nothing left */
  for (;;) {
    if (off == avail && !again) {
      if (avail == len)
        break; /* the client stopped, maybe mid-request */
      avail = avail + step < len ? avail + step : len;
    }
    again = false;
    size_t used = 0;
    request_parser_result_t res = request_parser_feed(&p, in + off, avail - off, &used);
    if (used > avail - off)
      fuzz_fail("took more bytes than it was given");
    off += used;
    if (res == RP_HEAD) {
      again = true;
    } else if (res == RP_COMPLETE) {
      fuzz_check_request(&req);
      request_reset(&req);
      request_parser_next(&p);
    } else if (res == RP_ERROR) {
      fuzz_check_refusal(&p);
      break;
    }
  }
  request_free(&req);
  return 0;
}
