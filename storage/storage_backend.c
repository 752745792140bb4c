#include "storage/storage_backend.h"

#include <errno.h>

#include "storage/storage_location.h"

int storage_backend_open(storage_backend_t **out, const char *location,
                         const storage_params_t *params, char *err, size_t errlen) {
  *out = NULL;
  storage_location_t loc;
  int rc = storage_location_parse(location, &loc, err, errlen);
  if (rc != 0)
    return rc;
  switch (loc.kind) {
  case STORAGE_SQLITE:
    return sqlite_backend_open(out, loc.path, params, err, errlen);
  case STORAGE_POSTGRES:
    return postgres_backend_open(out, loc.path, params, err, errlen);
  }
  return -EINVAL;
}

void storage_backend_insert_each(storage_backend_t *b, const stored_request_t *const *rows,
                                 size_t n, int *results, stored_request_t *existing) {
  for (size_t i = 0; i < n; i++)
    results[i] = b->ops->insert(b, rows[i], &existing[i]);
}
