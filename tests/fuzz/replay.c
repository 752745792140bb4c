/* replay: runs a fuzz target once over each file of its corpus, without
 * libFuzzer.
 *
 * Every build links each tests/fuzz/fuzz_*.c target with this main() and
 * ctest runs it over tests/fuzz/corpus/<name>/, so the seeds, and any crash
 * input a fuzz run found and that was added to the corpus after its fix,
 * are checked by the ordinary gcc, ASan and TSan runs too, not only when
 * someone fuzzes. Arguments are files or directories (one level deep).
 * Exits 1 when a directory holds no input: a target without a corpus would
 * otherwise pass while testing nothing. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Corpus files are small; a cap keeps a stray large file from mattering. */
#define REPLAY_MAX_INPUT (1024 * 1024)

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  uint8_t *data = malloc(REPLAY_MAX_INPUT);
  size_t n = data != NULL ? fread(data, 1, REPLAY_MAX_INPUT, f) : 0;
  fclose(f);
  if (data == NULL)
    return -1;
  /* An exact-size copy, so ASan sees a read one byte past the input. */
  uint8_t *exact = malloc(n > 0 ? n : 1);
  if (exact == NULL) {
    free(data);
    return -1;
  }
  memcpy(exact, data, n);
  free(data);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int replay_dir(const char *dir, size_t *count) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    perror(dir);
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    rc = replay_file(path);
    if (rc == 0)
      (*count)++;
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    size_t count = 0;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i])) {
      return 1;
    }
    if (S_ISDIR(st.st_mode) && count == 0) {
      fprintf(stderr, "%s: no input to replay\n", argv[i]);
      return 1;
    }
    fprintf(stderr, "%s: %zu inputs replayed\n", argv[i], S_ISDIR(st.st_mode) ? count : 1);
  }
  return 0;
}
