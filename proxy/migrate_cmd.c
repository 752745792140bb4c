#include "proxy/migrate_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_location.h"
#include "storage/storage_migrate.h"

int migrate_cmd_run(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "retryd: usage: retryd migrate FROM TO (each a --db value: PATH, "
                    "sqlite:PATH or postgres://...)\n");
    return 2;
  }
  char err[1024];
  storage_location_t loc;
  for (int i = 1; i < 3; i++) {
    if (storage_location_parse(argv[i], &loc, err, sizeof(err)) != 0) {
      fprintf(stderr, "retryd: migrate: %s\n", err);
      return 2;
    }
  }
  /* Copied before any use, so the passwords leave ps at once. */
  char *from = strdup(argv[1]), *to = strdup(argv[2]);
  (void)storage_location_mask_password(argv[1]);
  (void)storage_location_mask_password(argv[2]);
  if (from == NULL || to == NULL) {
    free(from);
    free(to);
    fprintf(stderr, "retryd: migrate: out of memory\n");
    return 1;
  }
  storage_migrate_result_t r;
  int rc = storage_migrate(from, to, &r, err, sizeof(err));
  free(from);
  free(to);
  if (rc != 0) {
    fprintf(stderr, "retryd: migrate: %s (moved %" PRId64 " before that)\n", err, r.moved);
    return 1;
  }
  printf("retryd: migrated %" PRId64 " requests (%" PRId64 " were there already)\n", r.moved,
         r.skipped);
  return 0;
}
