#include "storage/storage_migrate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "storage/storage_backend.h"

/* Rows read and written per transaction. */
#define MIGRATE_PAGE 256

/* The destination's limit is the source's content: nothing is refused for
 * room while moving. */
#define MIGRATE_NO_LIMIT INT64_MAX

/* Copies one page of rows in state, after *after_seq, into dst in one
 * durable transaction. Returns the number of rows read (0: done), or an
 * error. */
static int migrate_page(storage_backend_t *src, storage_backend_t *dst, rq_state_t state,
                        int64_t *after_seq, storage_migrate_result_t *out, char *err,
                        size_t errlen) {
  stored_request_t brief[MIGRATE_PAGE];
  bool synced;
  int n = 0, rc = src->ops->begin(src, false);
  if (rc == 0) {
    n = src->ops->list(src, (int)state, *after_seq, MIGRATE_PAGE, brief, after_seq);
    rc = n < 0 ? n : src->ops->commit(src, &synced);
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot read the %s requests of the source (%s)", rq_state_name(state),
             strerror(-rc));
    return rc;
  }
  storage_migrate_result_t page = {0, 0};
  rc = dst->ops->begin(dst, true);
  for (int i = 0; i < n; i++) {
    stored_request_t full, there;
    int got = rc == 0 ? src->ops->get(src, brief[i].id, true, &full) : rc;
    stored_request_free(&brief[i]);
    if (got != 0) {
      rc = rc != 0 ? rc : got;
      continue;
    }
    if (full.state == RQ_INFLIGHT) { /* its retryd stopped: due at once */
      full.state = RQ_QUEUED;
      full.next_attempt_at = full.updated_at;
    }
    if (dst->ops->get(dst, full.id, false, &there) == 0) {
      stored_request_free(&there);
      page.skipped++;
    } else {
      memset(&there, 0, sizeof(there));
      rc = dst->ops->insert(dst, &full, &there);
      stored_request_free(&there);
      if (rc == -EEXIST) { /* its Idempotency-Key twin is there already */
        rc = 0;
        page.skipped++;
      } else {
        page.moved += rc == 0;
      }
    }
    stored_request_free(&full);
  }
  if (rc == 0)
    rc = dst->ops->commit(dst, &synced);
  else
    dst->ops->rollback(dst);
  if (rc != 0) {
    snprintf(err, errlen, "cannot write to the destination (%s); nothing of this page was kept",
             strerror(-rc));
    return rc;
  }
  out->moved += page.moved;
  out->skipped += page.skipped;
  return n;
}

int storage_migrate(const char *from, const char *to, storage_migrate_result_t *out, char *err,
                    size_t errlen) {
  memset(out, 0, sizeof(*out));
  storage_params_t params = {.max_queue = MIGRATE_NO_LIMIT};
  storage_backend_t *src = NULL, *dst = NULL;
  char why[512] = "";
  int rc = storage_backend_open(&src, from, &params, why, sizeof(why));
  if (rc != 0) {
    snprintf(err, errlen, "cannot open the source: %s", why);
    return rc;
  }
  rc = storage_backend_open(&dst, to, &params, why, sizeof(why));
  if (rc != 0) {
    snprintf(err, errlen, "cannot open the destination: %s", why);
    src->ops->close(src);
    return rc;
  }
  static const rq_state_t moved_states[] = {RQ_QUEUED, RQ_INFLIGHT, RQ_DEAD};
  for (size_t s = 0; s < sizeof(moved_states) / sizeof(moved_states[0]) && rc == 0; s++) {
    int64_t after = 0;
    int n;
    while ((n = migrate_page(src, dst, moved_states[s], &after, out, err, errlen)) > 0) {
    }
    rc = n < 0 ? n : 0;
  }
  dst->ops->close(dst);
  src->ops->close(src);
  return rc;
}
