#include "proxy/upstream/answer_parser.h"

#include <stdio.h>
#include <string.h>

static answer_parser_t *parser_of(llhttp_t *l) {
  return l->data;
}

static int on_message_begin(llhttp_t *l) {
  answer_parser_t *p = parser_of(l);
  /* Also after an interim (1xx) answer: the final one starts afresh. */
  response_head_reset(p->head);
  p->reason_len = 0;
  return 0;
}

static int on_status(llhttp_t *l, const char *at, size_t len) {
  answer_parser_t *p = parser_of(l);
  size_t room = sizeof(p->head->reason) - 1 - p->reason_len;
  if (len > room)
    len = room; /* a reason phrase is kept only this long */
  memcpy(p->head->reason + p->reason_len, at, len);
  p->reason_len += len;
  p->head->reason[p->reason_len] = '\0';
  return 0;
}

static int refuse(answer_parser_t *p, const char *why) {
  snprintf(p->error, sizeof(p->error), "%s", why);
  return -1;
}

static int on_header_field(llhttp_t *l, const char *at, size_t len) {
  answer_parser_t *p = parser_of(l);
  if (headers_name_piece(&p->head->fields, at, len) != 0)
    return refuse(p, "the upstream's answer head is malformed or too large");
  return 0;
}

static int on_header_value(llhttp_t *l, const char *at, size_t len) {
  answer_parser_t *p = parser_of(l);
  if (p->value_open && !(p->value_cut && at == p->feed_start))
    return refuse(p, "the upstream's answer is malformed: obs-fold (a field line continued)");
  p->value_open = true;
  p->value_cut = !p->line_mode && at + len == p->feed_end;
  if (headers_value_piece(&p->head->fields, at, len) != 0)
    return refuse(p, "the upstream's answer head is malformed or too large");
  return 0;
}

static int on_header_value_complete(llhttp_t *l) {
  parser_of(l)->value_open = false;
  return 0;
}

static int on_headers_complete(llhttp_t *l) {
  answer_parser_t *p = parser_of(l);
  response_head_t *h = p->head;
  if (headers_end(&h->fields) != 0)
    return refuse(p, "the upstream's answer head is malformed or too large");
  int status = llhttp_get_status_code(l);
  if (status < 100 || status > 999 || status == 101) {
    snprintf(p->error, sizeof(p->error), "the upstream answered with status %d", status);
    return -1;
  }
  /* llhttp refuses a length next to chunked framing only after this
   * callback; the head is refused here, before anyone acts on it. */
  if ((l->flags & F_CONTENT_LENGTH) && (l->flags & F_TRANSFER_ENCODING))
    return refuse(p, "the upstream's answer is malformed: Content-Length with Transfer-Encoding");
  h->status = status;
  if (status < 200)
    return 0; /* interim: llhttp ends it here; the final answer follows */
  h->complete = true;
  if (p->ops->head(p) != 0)
    return -1;
  /* 1: no body follows, whatever Content-Length says (llhttp would read
   * one for a 204 or 304 that carries a length). */
  return p->is_head || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *l, const char *at, size_t len) {
  answer_parser_t *p = parser_of(l);
  return p->ops->body(p, at, len);
}

static int on_message_complete(llhttp_t *l) {
  answer_parser_t *p = parser_of(l);
  if (!p->head->complete)
    return 0; /* an interim answer ended */
  p->message_done = true;
  return HPE_PAUSED; /* stop here: anything after it is not this answer */
}

static const llhttp_settings_t answer_settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void answer_parser_start(answer_parser_t *p, response_head_t *head, bool is_head,
                         const answer_parser_ops_t *ops, void *owner) {
  llhttp_init(&p->llhttp, HTTP_RESPONSE, &answer_settings);
  p->llhttp.data = p;
  p->ops = ops;
  p->owner = owner;
  p->head = head;
  p->is_head = is_head;
  p->message_done = false;
  p->reason_len = 0;
  p->value_open = false;
  p->value_cut = false;
  p->line_mode = false;
  p->error[0] = '\0';
}

static llhttp_errno_t answer_execute(answer_parser_t *p, const char *data, size_t len) {
  p->feed_start = data;
  p->feed_end = data + len;
  return llhttp_execute(&p->llhttp, data, len);
}

llhttp_errno_t answer_parser_feed(answer_parser_t *p, const char *data, size_t len) {
  return answer_execute(p, data, len);
}

head_result_t answer_parser_head_line(answer_parser_t *p, const char *line, size_t len) {
  if (p->head->complete)
    return HEAD_MORE; /* trailers: not part of the head that was relayed */
  static const char h1[] = "HTTP/1.1";
  llhttp_errno_t err;
  p->line_mode = true;
  if (len > 7 && (memcmp(line, "HTTP/2 ", 7) == 0 || memcmp(line, "HTTP/3 ", 7) == 0)) {
    err = answer_execute(p, h1, sizeof(h1) - 1);
    if (err == HPE_OK)
      err = answer_execute(p, line + 6, len - 6);
  } else {
    err = answer_execute(p, line, len);
  }
  if (err != HPE_OK && err != HPE_PAUSED)
    return HEAD_ERROR;
  return p->head->complete ? HEAD_COMPLETE : HEAD_MORE;
}

const char *answer_parser_error(answer_parser_t *p) {
  if (p->error[0] == '\0')
    snprintf(p->error, sizeof(p->error), "the upstream's answer is malformed: %s",
             llhttp_get_error_reason(&p->llhttp));
  return p->error;
}
