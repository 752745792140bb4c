/* storage_location: what --db names, and the password of a URL masked in
 * place (main() runs that over its argv). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "storage/storage_location.h"

static void schemes_pick_the_backend(void **state) {
  (void)state;
  storage_location_t loc;
  char err[256];
  assert_int_equal(storage_location_parse("q.db", &loc, err, sizeof(err)), 0);
  assert_int_equal(loc.kind, STORAGE_SQLITE);
  assert_string_equal(loc.path, "q.db");
  assert_int_equal(storage_location_parse("sqlite:/data/q.db", &loc, err, sizeof(err)), 0);
  assert_int_equal(loc.kind, STORAGE_SQLITE);
  assert_string_equal(loc.path, "/data/q.db");
  assert_int_equal(storage_location_parse("/data/a:b", &loc, err, sizeof(err)), 0);
  assert_string_equal(loc.path, "/data/a:b");
  assert_int_equal(storage_location_parse("postgres://u:p@h/db", &loc, err, sizeof(err)), 0);
  assert_int_equal(loc.kind, STORAGE_POSTGRES);
  assert_string_equal(loc.path, "postgres://u:p@h/db"); /* libpq gets all of it */
  assert_int_equal(storage_location_parse("postgresql://h/db", &loc, err, sizeof(err)), 0);
  assert_int_equal(loc.kind, STORAGE_POSTGRES);
  assert_int_equal(storage_location_parse("postgresx://u:pw@h/db", &loc, err, sizeof(err)),
                   -EINVAL);
  assert_null(strstr(err, "pw"));
}

static void a_urls_password_is_masked_in_place(void **state) {
  (void)state;
  char arg[] = "--db=postgres://retryd:s3cr@t@db.internal:5432/q?sslmode=require";
  assert_true(storage_location_mask_password(arg));
  assert_string_equal(arg, "--db=postgres://retryd:******@db.internal:5432/q?sslmode=require");
  char none[] = "postgres://retryd@db/q";
  assert_false(storage_location_mask_password(none));
  assert_string_equal(none, "postgres://retryd@db/q");
  char path[] = "/var/lib/retryd/q.db";
  assert_false(storage_location_mask_password(path));
  char at_in_path[] = "postgres://h/db?options=a@b:c";
  assert_false(storage_location_mask_password(at_in_path));
  assert_string_equal(at_in_path, "postgres://h/db?options=a@b:c");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(schemes_pick_the_backend),
      cmocka_unit_test(a_urls_password_is_masked_in_place),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
