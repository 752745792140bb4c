/* Configuration: defaults, flags, environment, and one clear error per bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "proxy/queue/retry_decision.h"

static int load(config_t *cfg, char *err, size_t errlen, int argc, char **argv) {
  return config_load(cfg, argc, argv, err, errlen);
}

static int clear_env(void **state) {
  (void)state;
  unsetenv("RETRYD_RETRY_INTERVAL");
  unsetenv("RETRYD_LISTEN");
  unsetenv("RETRYD_MAX_BODY");
  return 0;
}

static void defaults_match_the_design(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  char *argv[] = {"retryd", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), CONFIG_OK);
  assert_string_equal(cfg.upstream, "https://us-east-1.recall.ai");
  assert_string_equal(cfg.listen_text, "127.0.0.1:8080");
  assert_string_equal(cfg.db_path, "retryd.db");
  assert_int_equal(cfg.retry_interval_ms, 30000);
  assert_int_equal(cfg.max_attempts, 0);
  assert_int_equal(cfg.max_age_ms, 86400000);
  assert_int_equal(cfg.retry_concurrency, 16);
  assert_int_equal(cfg.upstream_timeout_ms, 60000);
  assert_int_equal(cfg.max_body, 10 * 1024 * 1024);
  assert_int_equal(cfg.max_queue, 1000000);
  assert_int_equal(cfg.keep_completed_ms, 86400000);
  assert_int_equal(cfg.max_wait_ms, 120000);
  assert_int_equal(cfg.max_connections, 10000);
  assert_int_equal(cfg.log_level, LOG_INFO);
  assert_string_equal(cfg.admin_token, "");
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 507));
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 500));
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 429));
  assert_false(retry_decide_status_retryable(&cfg.retry_on, 409));
  assert_false(retry_decide_status_retryable(&cfg.retry_on, 404));
  assert_false(retry_decide_status_retryable(&cfg.retry_on, 200));
  assert_true(cfg.retry_on.network);
}

static void flags_in_both_forms_are_read(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  char *argv[] = {"retryd",      "--retry-interval",
                  "250ms",       "--max-body=64KiB",
                  "--listen",    "[::1]:9000",
                  "--upstream",  "http://example.test:81/api/",
                  "--log-level", "debug",
                  NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 10, argv), CONFIG_OK);
  assert_int_equal(cfg.retry_interval_ms, 250);
  assert_int_equal(cfg.max_body, 65536);
  assert_int_equal(cfg.listen_addr.ss_family, AF_INET6);
  assert_int_equal(ntohs(((struct sockaddr_in6 *)&cfg.listen_addr)->sin6_port), 9000);
  /* The trailing slash goes: every target starts with one. */
  assert_string_equal(cfg.upstream, "http://example.test:81/api");
  assert_int_equal(cfg.log_level, LOG_DEBUG);
}

static void environment_is_read_and_a_flag_wins(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  setenv("RETRYD_RETRY_INTERVAL", "5m", 1);
  setenv("RETRYD_MAX_BODY", "1MiB", 1);
  char *argv[] = {"retryd", "--max-body", "2MiB", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 3, argv), CONFIG_OK);
  assert_int_equal(cfg.retry_interval_ms, 300000);
  assert_int_equal(cfg.max_body, 2 * 1024 * 1024);
}

static void a_flag_overrides_a_bad_environment_value(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  setenv("RETRYD_LISTEN", "bad", 1);
  char *argv[] = {"retryd", "--listen=127.0.0.1:0", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 2, argv), CONFIG_OK);
  assert_string_equal(cfg.listen_text, "127.0.0.1:0");
}

static void a_bad_environment_value_names_the_option(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  setenv("RETRYD_RETRY_INTERVAL", "5x", 1);
  char *argv[] = {"retryd", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), CONFIG_ERROR);
  assert_non_null(strstr(err, "retry-interval"));
  assert_non_null(strstr(err, "RETRYD_RETRY_INTERVAL"));
}

static void each_bad_value_is_refused_naming_its_option(void **state) {
  (void)state;
  static const char *cases[][2] = {
      {"retry-interval", "5x"},
      {"retry-interval", "0s"},
      {"max-body", "10XB"},
      {"listen", "nohost"},
      {"listen", "127.0.0.1:99999"},
      {"listen", "example.com:80"},
      {"upstream", "ftp://x"},
      {"upstream", "notaurl"},
      {"upstream", "http://h/?q=1"},
      {"upstream", "http://u:p@h/"},
      {"max-attempts", "-1"},
      {"retry-on", "6xx"},
      {"retry-on", "200"},
      {"retry-on", "5xx,"},
      {"retry-on", "abc"},
      {"log-level", "loud"},
      {"retry-concurrency", "0"},
      {"max-connections", "0"},
      {"db", ""},
      {"max-queue", "1e6"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    config_t cfg;
    char err[512] = "";
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s", cases[i][0]);
    char *argv[] = {"retryd", flag, (char *)(uintptr_t)cases[i][1], NULL};
    int rc = load(&cfg, err, sizeof(err), 3, argv);
    if (rc != CONFIG_ERROR)
      fail_msg("%s %s was accepted", flag, cases[i][1]);
    assert_non_null(strstr(err, cases[i][0]));
    assert_null(strchr(err, '\n'));
  }
}

static void unknown_and_valueless_flags_are_refused(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  char *unknown[] = {"retryd", "--nope", "1", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 3, unknown), CONFIG_ERROR);
  assert_non_null(strstr(err, "nope"));
  char *valueless[] = {"retryd", "--upstream", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 2, valueless), CONFIG_ERROR);
  assert_non_null(strstr(err, "upstream"));
  char *stray[] = {"retryd", "stray", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 2, stray), CONFIG_ERROR);
}

static void retry_on_lists_replace_or_extend_the_default(void **state) {
  (void)state;
  config_t cfg;
  char err[256];
  config_defaults(&cfg);
  assert_int_equal(config_set(&cfg, "retry-on", "507,network", err, sizeof(err)), CONFIG_OK);
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 507));
  assert_false(retry_decide_status_retryable(&cfg.retry_on, 503));
  assert_false(retry_decide_status_retryable(&cfg.retry_on, 429));
  assert_true(cfg.retry_on.network);
  assert_int_equal(config_set(&cfg, "retry-on", "+409", err, sizeof(err)), CONFIG_OK);
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 409));
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 503));
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 429));
  assert_int_equal(config_set(&cfg, "retry-on", "4xx", err, sizeof(err)), CONFIG_OK);
  assert_true(retry_decide_status_retryable(&cfg.retry_on, 404));
  assert_false(retry_decide_status_retryable(&cfg.retry_on, 500));
  assert_false(cfg.retry_on.network);
}

static void client_body_timeout_defaults_to_60s_and_is_read(void **state) {
  (void)state;
  config_t cfg;
  char err[256] = "";
  char *plain[] = {"retryd", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 1, plain), CONFIG_OK);
  assert_int_equal(cfg.client_body_timeout_ms, 60000);
  assert_int_equal(cfg.client_timeout_ms, 10000);
  char *argv[] = {"retryd", "--client-body-timeout", "90s", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 3, argv), CONFIG_OK);
  assert_int_equal(cfg.client_body_timeout_ms, 90000);
  char *zero[] = {"retryd", "--client-body-timeout", "0s", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 3, zero), CONFIG_ERROR);
  assert_non_null(strstr(err, "client-body-timeout"));
}

/* --db names its backend by scheme: a path and sqlite:PATH are SQLite;
 * an unknown scheme is a configuration error naming only the scheme (a
 * URL's password must never reach an error line). */
static void db_takes_a_path_or_a_sqlite_scheme_and_refuses_others(void **state) {
  (void)state;
  config_t cfg;
  char err[512] = "";
  char *argv[] = {"retryd", NULL};
  assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), CONFIG_OK);
  assert_int_equal(config_set(&cfg, "db", "sqlite:/var/lib/retryd/q.db", err, sizeof(err)),
                   CONFIG_OK);
  assert_string_equal(cfg.db_path, "sqlite:/var/lib/retryd/q.db");
  assert_int_equal(config_set(&cfg, "db", "./odd:name.db", err, sizeof(err)), CONFIG_OK);
  assert_int_equal(config_set(&cfg, "db", "redis://user:hunter2@cache/0", err, sizeof(err)),
                   CONFIG_ERROR);
  assert_non_null(strstr(err, "--db"));
  assert_non_null(strstr(err, "\"redis\""));
  assert_null(strstr(err, "hunter2"));
  assert_int_equal(config_set(&cfg, "db", "sqlite:", err, sizeof(err)), CONFIG_ERROR);
  assert_non_null(strstr(err, "empty path"));
  assert_string_equal(cfg.db_path, "./odd:name.db"); /* a refused value changes nothing */
}

/* What config_each_unknown_env() reported, for the test below. */
typedef struct {
  char names[8][64];
  int n;
} unknown_seen_t;

static void collect_unknown(const char *name, size_t len, void *arg) {
  unknown_seen_t *seen = arg;
  assert_true(seen->n < 8);
  assert_true(len < sizeof(seen->names[0]));
  memcpy(seen->names[seen->n], name, len);
  seen->names[seen->n][len] = '\0';
  seen->n++;
}

/* A RETRYD_* variable that names no option is reported by its name alone
 * (a typo would otherwise be ignored without a word; its value may be a
 * token). Options' own forms, the test suite's RETRYD_TEST_* hooks and
 * other variables are not. */
static void unknown_retryd_variables_are_named_without_their_value(void **state) {
  (void)state;
  char *envp[] = {"PATH=/usr/bin",
                  "RETRYD_RETRY_INTERVAL=5m",
                  "RETRYD_RETRY_INTERVL=hunter2",
                  "RETRYD_ADMIN_TOKEN=secret",
                  "RETRYD_KEEPALIVE_TIMEOUT=5s",
                  "RETRYD_max_body=1KiB",
                  "RETRYD_=x",
                  "RETRYDX=1",
                  "retryd_db=x",
                  "RETRYD_DB",
                  "RETRYD_ADMIN_TOKENS=secret",
                  "RETRYD_TEST_HISTORY_PERIOD_MS=100",
                  NULL};
  unknown_seen_t seen = {.n = 0};
  config_each_unknown_env(envp, collect_unknown, &seen);
  assert_int_equal(seen.n, 4);
  assert_string_equal(seen.names[0], "RETRYD_RETRY_INTERVL");
  assert_string_equal(seen.names[1], "RETRYD_max_body");
  assert_string_equal(seen.names[2], "RETRYD_");
  assert_string_equal(seen.names[3], "RETRYD_ADMIN_TOKENS");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(defaults_match_the_design, clear_env),
      cmocka_unit_test_setup(flags_in_both_forms_are_read, clear_env),
      cmocka_unit_test_setup(environment_is_read_and_a_flag_wins, clear_env),
      cmocka_unit_test_setup(a_bad_environment_value_names_the_option, clear_env),
      cmocka_unit_test_setup(a_flag_overrides_a_bad_environment_value, clear_env),
      cmocka_unit_test_setup(each_bad_value_is_refused_naming_its_option, clear_env),
      cmocka_unit_test_setup(unknown_and_valueless_flags_are_refused, clear_env),
      cmocka_unit_test_setup(retry_on_lists_replace_or_extend_the_default, clear_env),
      cmocka_unit_test_setup(client_body_timeout_defaults_to_60s_and_is_read, clear_env),
      cmocka_unit_test_setup(db_takes_a_path_or_a_sqlite_scheme_and_refuses_others, clear_env),
      cmocka_unit_test(unknown_retryd_variables_are_named_without_their_value),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
