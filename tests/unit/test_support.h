/* What several unit tests share: a temporary directory of the test's own
 * (test_store.c, test_sqlite_queue.c, test_storage_backend.c), and the
 * queued row and simple outcomes the storage tests build on
 * (test_sqlite_queue.c, test_storage_backend.c).
 *
 * Header-only and static inline, so a test that uses part of it compiles
 * without unused-function warnings. */
#ifndef RETRYD_TESTS_UNIT_TEST_SUPPORT_H
#define RETRYD_TESTS_UNIT_TEST_SUPPORT_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/stored_request.h"

/* ---- a temporary directory per test ------------------------------------- */

/* Makes a new directory /tmp/retryd-test-NAME-XXXXXX and writes its path to
 * dir. 0, or -1 when it could not. */
static inline int test_dir_make(char *dir, size_t dirlen, const char *name) {
  int n = snprintf(dir, dirlen, "/tmp/retryd-test-%s-XXXXXX", name);
  if (n < 0 || (size_t)n >= dirlen)
    return -1;
  return mkdtemp(dir) != NULL ? 0 : -1;
}

/* Removes dir and the files in it (a test's directory holds no others). */
static inline void test_dir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char p[512];
      snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* ---- rows and outcomes of the storage tests ------------------------------ */

static const char HEADERS[] = "Content-Type: application/json\r\nAuthorization: Token abc\r\n";
static const char BODY[] = "{\"meeting_url\":\"https://x\"}";

/* A queued POST with HEADERS and BODY; the caller owns nothing. */
static inline stored_request_t new_row(const char *id, int64_t created, int64_t due,
                                       const char *key) {
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  snprintf(r.id, sizeof(r.id), "%s", id);
  r.state = RQ_QUEUED;
  r.method = "POST";
  r.target = "/api/v1/bot";
  r.headers = HEADERS;
  r.headers_len = sizeof(HEADERS) - 1;
  r.body = BODY;
  r.body_len = sizeof(BODY) - 1;
  r.idempotency_key = key;
  r.created_at = created;
  r.next_attempt_at = due;
  return r;
}

/* An attempt at now that ended as kind: a completed one answered 200, a
 * retry is due a second later. */
static inline attempt_outcome_t simple_outcome(outcome_t kind, int64_t now) {
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = kind;
  if (kind == OUTCOME_COMPLETED)
    o.response_status = 200;
  if (kind == OUTCOME_RETRY)
    o.next_attempt_at = now + 1000;
  return o;
}

#endif
