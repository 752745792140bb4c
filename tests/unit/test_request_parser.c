/* request_parser: the checks on what a client sends, wherever its reads are
 * cut. Each input is fed cut at every byte position (two reads), and one
 * byte at a time, and must give the same outcome every way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/config.h"
#include "proxy/http/request.h"
#include "proxy/http/request_parser.h"

typedef struct {
  config_t cfg;
  request_t req;
  request_parser_t p;
} fixture_t;

static void fixture_init(fixture_t *f) {
  config_defaults(&f->cfg);
  request_init(&f->req, &f->cfg);
  request_parser_init(&f->p, &f->req, &f->cfg);
}

static void fixture_free(fixture_t *f) {
  request_free(&f->req);
}

/* Feeds data in reads cut at the given positions (ascending, < len), as
 * http_conn does: after RP_HEAD it feeds again, with nothing if need be.
 * Returns the first RP_COMPLETE or RP_ERROR, or RP_MORE; *rest is how many
 * bytes of data were not taken (a pipelined request). */
static request_parser_result_t feed_cut(fixture_t *f, const char *data, size_t len,
                                        const size_t *cuts, size_t ncuts, size_t *rest) {
  size_t off = 0, avail = 0, next_cut = 0;
  bool again = false;
  for (;;) {
    if (off == avail && !again) {
      if (avail == len)
        break;
      avail = next_cut < ncuts ? cuts[next_cut++] : len;
      if (avail <= off)
        continue;
    }
    again = false;
    size_t used = 0;
    request_parser_result_t res = request_parser_feed(&f->p, data + off, avail - off, &used);
    assert_true(used <= avail - off);
    off += used;
    if (res == RP_HEAD) {
      again = true;
      continue;
    }
    if (res != RP_MORE) {
      if (rest != NULL)
        *rest = len - off;
      return res;
    }
  }
  if (rest != NULL)
    *rest = 0;
  return RP_MORE;
}

/* The outcome of data fed whole, cut at each position, and byte by byte;
 * asserts they agree and returns it (the fixture holds the whole-read run). */
static request_parser_result_t outcome_every_cut(const char *data, int *status) {
  size_t len = strlen(data);
  request_parser_result_t whole;
  int whole_status;
  {
    fixture_t f;
    fixture_init(&f);
    whole = feed_cut(&f, data, len, NULL, 0, NULL);
    whole_status = request_parser_status(&f.p);
    fixture_free(&f);
  }
  for (size_t cut = 1; cut < len; cut++) {
    fixture_t f;
    fixture_init(&f);
    request_parser_result_t res = feed_cut(&f, data, len, &cut, 1, NULL);
    if (res != whole || request_parser_status(&f.p) != whole_status)
      fail_msg("cut at %zu of %zu: outcome %d/%d, whole %d/%d: %s", cut, len, res,
               request_parser_status(&f.p), whole, whole_status, data);
    fixture_free(&f);
  }
  {
    size_t cuts[4096];
    assert_true(len <= sizeof(cuts) / sizeof(cuts[0]));
    for (size_t i = 0; i + 1 < len; i++)
      cuts[i] = i + 1;
    fixture_t f;
    fixture_init(&f);
    request_parser_result_t res = feed_cut(&f, data, len, cuts, len > 0 ? len - 1 : 0, NULL);
    assert_int_equal(res, whole);
    assert_int_equal(request_parser_status(&f.p), whole_status);
    fixture_free(&f);
  }
  *status = whole_status;
  return whole;
}

static void obs_fold_refused_in_every_form_wherever_reads_are_cut(void **state) {
  (void)state;
  static const char *const folds[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A:    \r\n\ttwo\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n \r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n \r\n\r\n",
      "GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: a\r\n b\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T:\r\n b\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T:\r\n \r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(folds) / sizeof(folds[0]); i++) {
    int status;
    request_parser_result_t res = outcome_every_cut(folds[i], &status);
    if (res != RP_ERROR || status != 400)
      fail_msg("accepted (%d/%d): %s", res, status, folds[i]);
  }
}

static void valid_requests_complete_wherever_reads_are_cut(void **state) {
  (void)state;
  static const char *const valid[] = {
      "GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Blank:   \r\nX-B: v  w\tz\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe\r\n ",
      "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;e=1\r\n\r\n \r\n2\r\nde\r\n0\r\nX-T: fine\r\nX-U:\r\n\r\n",
      "GET /old HTTP/1.0\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    int status;
    request_parser_result_t res = outcome_every_cut(valid[i], &status);
    if (res != RP_COMPLETE)
      fail_msg("refused (%d/%d): %s", res, status, valid[i]);
  }
}

static request_parser_result_t feed_whole(fixture_t *f, const char *data, size_t *rest) {
  return feed_cut(f, data, strlen(data), NULL, 0, rest);
}

static void trailers_checked_like_head_fields(void **state) {
  (void)state;
  static const char *const bad[] = {
      "Host : evil.example", "X-T: a\001b", "X(T): 1", ": 1",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char req[256];
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n%s\r\n\r\n",
             bad[i]);
    fixture_t f;
    fixture_init(&f);
    if (feed_whole(&f, req, NULL) != RP_ERROR || request_parser_status(&f.p) != 400)
      fail_msg("trailer accepted: %s", bad[i]);
    fixture_free(&f);
  }
}

static void head_only_trailers_dropped_others_merged(void **state) {
  (void)state;
  fixture_t f;
  fixture_init(&f);
  const char *req = "POST /m HTTP/1.1\r\nHost: x\r\nConnection: X-Hop\r\nAuthorization: head\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                    "Host: evil\r\nAuthorization: trailer\r\nX-Retryd-Token: t\r\nX-Hop: 1\r\n"
                    "Content-Length: 9\r\nConnection: close\r\nX-Checksum: abc\r\n\r\n";
  assert_int_equal(feed_whole(&f, req, NULL), RP_COMPLETE);
  const headers_t *h = &f.req.headers;
  assert_string_equal(headers_get(h, "x-checksum"), "abc");
  assert_int_equal(headers_count_named(h, "host"), 1);
  assert_string_equal(headers_get(h, "host"), "x");
  assert_int_equal(headers_count_named(h, "authorization"), 1);
  assert_string_equal(headers_get(h, "authorization"), "head");
  assert_null(headers_get(h, "x-retryd-token"));
  assert_null(headers_get(h, "x-hop"));
  assert_null(headers_get(h, "content-length"));
  assert_int_equal(headers_count_named(h, "connection"), 1);
  /* A Connection: close trailer does not end the connection. */
  assert_true(f.req.keep_alive);
  assert_string_equal(f.req.body.data, "ok");
  fixture_free(&f);
}

static void targets_outside_visible_ascii_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /x?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    fixture_t f;
    fixture_init(&f);
    assert_int_equal(feed_whole(&f, bad[i], NULL), RP_ERROR);
    assert_int_equal(request_parser_status(&f.p), 400);
    fixture_free(&f);
  }
}

static void request_after_an_upgrade_request_is_parsed(void **state) {
  (void)state;
  fixture_t f;
  fixture_init(&f);
  const char *two = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t rest = 0;
  assert_int_equal(feed_whole(&f, two, &rest), RP_COMPLETE);
  assert_string_equal(f.req.target.data, "/ws");
  assert_true(f.req.keep_alive);
  const char *second = two + strlen(two) - rest;
  request_reset(&f.req);
  request_parser_next(&f.p);
  assert_int_equal(feed_whole(&f, second, &rest), RP_COMPLETE);
  assert_int_equal(rest, 0);
  assert_string_equal(f.req.target.data, "/next");
  fixture_free(&f);
}

static void feeding_again_without_next_takes_nothing(void **state) {
  (void)state;
  fixture_t f;
  fixture_init(&f);
  const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t rest = 0;
  assert_int_equal(feed_whole(&f, two, &rest), RP_COMPLETE);
  size_t used = 99;
  assert_int_equal(request_parser_feed(&f.p, two + strlen(two) - rest, rest, &used), RP_COMPLETE);
  assert_int_equal(used, 0);
  assert_string_equal(f.req.target.data, "/a");
  fixture_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(obs_fold_refused_in_every_form_wherever_reads_are_cut),
      cmocka_unit_test(valid_requests_complete_wherever_reads_are_cut),
      cmocka_unit_test(trailers_checked_like_head_fields),
      cmocka_unit_test(head_only_trailers_dropped_others_merged),
      cmocka_unit_test(targets_outside_visible_ascii_refused),
      cmocka_unit_test(request_after_an_upgrade_request_is_parsed),
      cmocka_unit_test(feeding_again_without_next_takes_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
