/* Header lists, hop-by-hop filtering and redaction rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "proxy/buf.h"
#include "proxy/http/headers.h"

static void fields_arriving_in_pieces_are_joined(void **state) {
  (void)state;
  headers_t h;
  headers_init(&h, 1024);
  assert_int_equal(headers_name_piece(&h, "Con", 3), 0);
  assert_int_equal(headers_name_piece(&h, "tent-Type", 9), 0);
  assert_int_equal(headers_value_piece(&h, "appli", 5), 0);
  assert_int_equal(headers_value_piece(&h, "cation/json", 11), 0);
  assert_int_equal(headers_name_piece(&h, "X-Empty", 7), 0);
  assert_int_equal(headers_name_piece(&h, "X-B", 3), 0); /* still the same name */
  assert_int_equal(headers_end(&h), 0);
  assert_int_equal(h.count, 2);
  assert_string_equal(headers_name(&h, 0), "Content-Type");
  assert_string_equal(headers_value(&h, 0), "application/json");
  assert_string_equal(headers_name(&h, 1), "X-EmptyX-B");
  assert_string_equal(headers_value(&h, 1), "");
  assert_string_equal(headers_get(&h, "content-type"), "application/json");
  assert_null(headers_get(&h, "accept"));
  headers_free(&h);
}

static void the_byte_cap_is_enforced(void **state) {
  (void)state;
  headers_t h;
  headers_init(&h, 32);
  assert_int_equal(headers_add(&h, "A", 1, "0123456789", 10), 0);
  assert_int_equal(headers_add(&h, "B", 1, "0123456789012345678901234", 25), -E2BIG);
  headers_free(&h);
}

static void duplicate_fields_are_counted(void **state) {
  (void)state;
  headers_t h;
  headers_init(&h, 1024);
  assert_int_equal(headers_add(&h, "Content-Length", 14, "5", 1), 0);
  assert_int_equal(headers_add(&h, "content-length", 14, "5", 1), 0);
  assert_int_equal(headers_count_named(&h, "CONTENT-LENGTH"), 2);
  headers_reset(&h);
  assert_int_equal(h.count, 0);
  headers_free(&h);
}

static void hop_by_hop_fields_include_those_named_in_connection(void **state) {
  (void)state;
  const char *always[] = {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                          "Transfer-Encoding", "Upgrade", "Proxy-Authorization"};
  for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
    assert_true(headers_is_hop_by_hop(always[i], NULL));
  assert_false(headers_is_hop_by_hop("X-Trace", NULL));
  assert_true(headers_is_hop_by_hop("X-Trace", "keep-alive, x-trace"));
  assert_false(headers_is_hop_by_hop("X-Trace-Id", "x-trace"));
  assert_false(headers_is_hop_by_hop("Authorization", "close"));
  assert_false(headers_is_hop_by_hop("Content-Type", NULL));
}

static void connection_names_only_when_beyond_keep_alive(void **state) {
  (void)state;
  headers_t h;
  headers_init(&h, 4096);
  assert_null(headers_connection_names(&h));
  assert_int_equal(headers_add(&h, "Connection", 10, "Keep-Alive", 10), 0);
  assert_null(headers_connection_names(&h));
  headers_reset(&h);
  assert_int_equal(headers_add(&h, "connection", 10, "keep-alive, X-Trace", 19), 0);
  assert_string_equal(headers_connection_names(&h), "keep-alive, X-Trace");
  headers_reset(&h);
  assert_int_equal(headers_add(&h, "Connection", 10, "close", 5), 0);
  assert_string_equal(headers_connection_names(&h), "close");
  headers_free(&h);
}

static void list_tokens_ignore_case_and_space(void **state) {
  (void)state;
  assert_true(headers_list_has_token("close", "close"));
  assert_true(headers_list_has_token(" Keep-Alive ,\tClose ", "close"));
  assert_false(headers_list_has_token("closed", "close"));
  assert_false(headers_list_has_token("", "close"));
}

static void credentials_are_secret(void **state) {
  (void)state;
  const char *secret[] = {"Authorization", "proxy-authorization", "COOKIE", "Set-Cookie",
                          "X-Api-Key", "X-Retryd-Token"};
  for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
    assert_true(headers_is_secret(secret[i]));
  assert_false(headers_is_secret("Content-Type"));
  assert_false(headers_is_secret("X-Api-Key-Id"));
}

static void retryd_own_fields_are_told_apart(void **state) {
  (void)state;
  assert_true(headers_is_retryd_own("X-Retryd-Token"));
  assert_true(headers_is_retryd_own("x-retryd-token"));
  assert_true(headers_is_retryd_own("Retryd-Callback"));
  assert_true(headers_is_retryd_own("RETRYD-DEADLINE"));
  assert_true(headers_is_retryd_own("retryd-anything"));
  assert_false(headers_is_retryd_own("Retryd")); /* no dash: not ours */
  assert_false(headers_is_retryd_own("X-Retryd-Tokens"));
  assert_false(headers_is_retryd_own("Retry-After"));
  assert_false(headers_is_retryd_own("X-Request-Id"));
  assert_false(headers_is_retryd_own("Host"));
}

static void head_only_fields_cover_framing_routing_auth_and_own(void **state) {
  (void)state;
  static const char *const head_only[] = {
      "Content-Length", "transfer-encoding", "Trailer", "Host", "Max-Forwards",
      "Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "Expect", "Range",
      "If-None-Match", "If-Modified-Since", "Cache-Control", "Content-Type",
      "Content-Encoding", "Prefer", "Idempotency-Key", "X-Retryd-Token", "Retryd-Deadline",
  };
  for (size_t i = 0; i < sizeof(head_only) / sizeof(head_only[0]); i++)
    assert_true(headers_is_head_only(head_only[i]));
  assert_false(headers_is_head_only("X-Checksum"));
  assert_false(headers_is_head_only("Server-Timing"));
  assert_false(headers_is_head_only("Digest"));
}

static void json_escaping_keeps_lines_valid(void **state) {
  (void)state;
  buf_t b;
  buf_init(&b, 256);
  const char in[] = "a\"b\\c\nd\x01\xff";
  assert_int_equal(buf_append_json_escaped(&b, in, sizeof(in) - 1), 0);
  assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\u0001\\u00ff");
  buf_free(&b);
}

static void buffers_refuse_to_grow_past_their_cap(void **state) {
  (void)state;
  buf_t b;
  buf_init(&b, 8);
  assert_int_equal(buf_append(&b, "12345678", 8), 0);
  assert_int_equal(buf_append(&b, "9", 1), -E2BIG);
  assert_int_equal(b.len, 8);
  buf_consume(&b, 3);
  assert_memory_equal(b.data, "45678", 5);
  assert_int_equal(buf_printf(&b, "%d", 123), 0);
  assert_int_equal(buf_printf(&b, "%d", 4), -E2BIG);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fields_arriving_in_pieces_are_joined),
      cmocka_unit_test(the_byte_cap_is_enforced),
      cmocka_unit_test(duplicate_fields_are_counted),
      cmocka_unit_test(hop_by_hop_fields_include_those_named_in_connection),
      cmocka_unit_test(connection_names_only_when_beyond_keep_alive),
      cmocka_unit_test(list_tokens_ignore_case_and_space),
      cmocka_unit_test(credentials_are_secret),
      cmocka_unit_test(retryd_own_fields_are_told_apart),
      cmocka_unit_test(head_only_fields_cover_framing_routing_auth_and_own),
      cmocka_unit_test(json_escaping_keeps_lines_valid),
      cmocka_unit_test(buffers_refuse_to_grow_past_their_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
