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
