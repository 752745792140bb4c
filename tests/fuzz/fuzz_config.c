/* Fuzz target: the command line and environment, proxy/config.c, and the
 * duration and size parsers under them, proxy/units.c.
 *
 * The input is a list of lines. A line "RETRYD_NAME=value" goes into the
 * environment; every other line is one argv word after "retryd". The whole
 * is handed to config_load(), the function main() calls, which reports a bad
 * value through its return code and err rather than exiting, so the real
 * parse runs here unchanged. Each word is also given to the units parsers
 * directly, so their corner cases (overflow, units, signs) are reached
 * without first finding an option name. After the run the environment is
 * put back, so one input cannot change how the next one parses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "proxy/units.h"

/* Beyond this many lines the input is cut: no option list is longer, and
 * a bound keeps every run fast. */
#define FUZZ_MAX_WORDS 64

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* --help and --version print to stdout on every run that has them. */
  if (freopen("/dev/null", "w", stdout) == NULL)
    abort();
  return 0;
}

static void fuzz_units(const char *word) {
  uint64_t v;
  if (units_parse_duration_ms(word, &v) == 0 && word[0] == '\0')
    abort(); /* an empty string is never a duration */
  if (units_parse_size(word, &v) == 0 && word[0] == '\0')
    abort();
  if (units_parse_uint(word, &v) == 0 && (word[0] < '0' || word[0] > '9'))
    abort(); /* digits only: no sign, no space */
}

/* Puts "RETRYD_NAME=value" into the environment without a copy: setenv()
 * would keep every value it was ever given (glibc never frees them), and a
 * long run would grow without end. */
static int fuzz_env_put(char *line, char *names[], int *n) {
  size_t nlen = (size_t)(strchr(line, '=') - line);
  char *name = strndup(line, nlen);
  if (name == NULL || putenv(line) != 0) {
    free(name);
    return -1;
  }
  names[(*n)++] = name;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';

  static char argv0[] = "retryd";
  char *argv[FUZZ_MAX_WORDS + 2] = {argv0};
  char *env_names[FUZZ_MAX_WORDS];
  int argc = 1, nenv = 0;
  /* Lines, empty ones included: "--db" followed by "" is a case. */
  char *w = text;
  while (w != NULL && argc + nenv <= FUZZ_MAX_WORDS) {
    char *nl = strchr(w, '\n');
    if (nl != NULL)
      *nl = '\0';
    fuzz_units(w);
    if (strncmp(w, "RETRYD_", 7) == 0 && strchr(w, '=') != NULL) {
      if (fuzz_env_put(w, env_names, &nenv) != 0)
        abort();
    } else {
      argv[argc++] = w;
    }
    w = nl != NULL ? nl + 1 : NULL;
  }
  argv[argc] = NULL;

  config_t cfg;
  char err[512];
  err[0] = '\0';
  int rc = config_load(&cfg, argc, argv, err, sizeof(err));
  if (rc != CONFIG_OK && rc != CONFIG_ERROR && rc != CONFIG_EXIT)
    abort();
  /* main() prints the error as one line naming what was wrong. */
  if (rc == CONFIG_ERROR && (err[0] == '\0' || strchr(err, '\n') != NULL))
    abort();
  for (int i = 0; i < nenv; i++) {
    unsetenv(env_names[i]);
    free(env_names[i]);
  }
  free(text);
  return 0;
}
