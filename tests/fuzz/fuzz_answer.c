/* Fuzz target: the one rule by which both upstream clients read an answer,
 * proxy/upstream/answer_parser.c (strict llhttp plus retryd's field checks).
 *
 * The first byte chooses how the rest is fed: as raw bytes in pieces (the
 * http:// and own https:// client, reading a socket; the piece sizes come
 * from the byte, so values cut across reads are tried), or line by line
 * (how libcurl hands head lines to the HTTP/2 client). A body callback
 * pauses now and then, as a slow client makes it, and parsing resumes
 * where it stopped. Whatever the bytes, the parser must stay inside its
 * buffers, and a head it passes must be one the relay can trust: a final
 * status (200..999, no 101) and fields within the cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/upstream/answer_parser.h"

#define HEAD_CAP 4096

static int heads;

static int on_head(answer_parser_t *p) {
  int s = p->head->status;
  if (s < 200 || s > 999 || s == 101 || !p->head->complete)
    abort();
  if (p->head->fields.data.len > HEAD_CAP)
    abort();
  heads++;
  return 0;
}

static int on_body(answer_parser_t *p, const char *at, size_t len) {
  (void)p;
  /* llhttp may hand over an empty piece after a resume: nothing to pause. */
  return len > 0 && (at[0] & 7) == 0 ? HPE_PAUSED : 0;
}

static const answer_parser_ops_t ops = {.head = on_head, .body = on_body};

/* Raw bytes in pieces; a pause is resumed at once, from where it stopped. */
static void feed_raw(answer_parser_t *p, const char *data, size_t size, size_t piece) {
  size_t off = 0;
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece;
    const char *chunk = data + off;
    llhttp_errno_t err = answer_parser_feed(p, chunk, n);
    while (err == HPE_PAUSED && !p->message_done) {
      const char *pos = llhttp_get_error_pos(&p->llhttp);
      if (pos < chunk || pos > chunk + n)
        abort();
      llhttp_resume(&p->llhttp);
      n -= (size_t)(pos - chunk);
      chunk = pos;
      err = answer_parser_feed(p, chunk, n);
    }
    if (err != HPE_OK)
      return; /* refused, or the answer ended: the connection is done */
    off += piece < size - off ? piece : size - off;
  }
}

static void feed_lines(answer_parser_t *p, const char *data, size_t size) {
  const char *end = data + size;
  while (data < end) {
    const char *eol = memchr(data, '\n', (size_t)(end - data));
    size_t len = eol ? (size_t)(eol - data) + 1 : (size_t)(end - data);
    if (answer_parser_head_line(p, data, len) == HEAD_ERROR)
      return;
    data += len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  /* A heap copy of exactly the bytes, so an over-read is an ASan report. */
  char *copy = malloc(size - 1 > 0 ? size - 1 : 1);
  if (copy == NULL)
    return 0;
  memcpy(copy, data + 1, size - 1);
  response_head_t head;
  response_head_init(&head, HEAD_CAP);
  answer_parser_t p;
  answer_parser_start(&p, &head, (mode & 0x40) != 0, &ops, NULL);
  heads = 0;
  if (mode & 0x80)
    feed_lines(&p, copy, size - 1);
  else
    feed_raw(&p, copy, size - 1, (size_t)(mode & 0x3f) + 1);
  (void)answer_parser_error(&p);
  if (heads > 1)
    abort(); /* one final head per answer */
  response_head_free(&head);
  free(copy);
  return 0;
}
