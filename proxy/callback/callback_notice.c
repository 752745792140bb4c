#include "proxy/callback/callback_notice.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/queue/request_json.h"

static int json_str(buf_t *out, const char *s, size_t len) {
  int rc = buf_append(out, "\"", 1);
  if (rc == 0)
    rc = buf_append_json_escaped(out, s, len);
  return rc == 0 ? buf_append(out, "\"", 1) : rc;
}

static int json_str_or_null(buf_t *out, const char *s) {
  return s ? json_str(out, s, strlen(s)) : buf_append_str(out, "null");
}

/* Strict UTF-8 (no overlongs, surrogates or NULs): such a body goes in as a
 * JSON string, anything else as base64. */
static bool callback_is_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len;
    uint32_t cp;
    if (c == 0)
      return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

static int callback_base64(buf_t *out, const char *data, size_t len) {
  size_t need = 4 * ((len + 2) / 3) + 1;
  unsigned char *enc = malloc(need);
  if (enc == NULL)
    return -1;
  int n = EVP_EncodeBlock(enc, (const unsigned char *)data, (int)len);
  int rc = buf_append(out, "\"", 1);
  if (rc == 0)
    rc = buf_append(out, enc, (size_t)n);
  if (rc == 0)
    rc = buf_append(out, "\"", 1);
  free(enc);
  return rc;
}

/* The stored "Name: value\r\n" lines as [["name","value"], ...]. */
static int callback_headers(buf_t *out, const char *lines, size_t len) {
  int rc = buf_append(out, "[", 1);
  const char *p = lines, *end = lines + len;
  bool first = true;
  while (rc == 0 && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    size_t llen = (size_t)(line_end - p);
    if (llen > 0 && p[llen - 1] == '\r')
      llen--;
    const char *colon = memchr(p, ':', llen);
    if (colon != NULL) {
      const char *v = colon + 1;
      while (v < p + llen && (*v == ' ' || *v == '\t'))
        v++;
      rc = buf_append_str(out, first ? "[" : ",[");
      if (rc == 0)
        rc = json_str(out, p, (size_t)(colon - p));
      if (rc == 0)
        rc = buf_append(out, ",", 1);
      if (rc == 0)
        rc = json_str(out, v, (size_t)(p + llen - v));
      if (rc == 0)
        rc = buf_append(out, "]", 1);
      first = false;
    }
    p = eol ? eol + 1 : end;
  }
  return rc == 0 ? buf_append(out, "]", 1) : rc;
}

static int callback_response(buf_t *out, const storage_callback_t *n) {
  if (n->request_state != RQ_COMPLETED || !n->has_answer)
    return buf_append_str(out, "null");
  int rc = buf_append_str(out, "{\"status\":");
  if (rc == 0)
    rc = buf_append_int(out, n->response_status);
  if (rc == 0)
    rc = buf_append_str(out, ",\"headers\":");
  if (rc == 0)
    rc = callback_headers(out, n->response_headers ? n->response_headers : "",
                          n->response_headers_len);
  if (rc == 0)
    rc = buf_append_str(out, ",\"body_size\":");
  if (rc == 0)
    rc = buf_append_uint(out, n->response_body_len);
  if (rc == 0 && n->response_body == NULL && n->response_body_len > 0) {
    rc = buf_append_str(out, ",\"body\":null,\"body_truncated\":true");
  } else if (rc == 0) {
    const char *b = n->response_body ? n->response_body : "";
    size_t blen = n->response_body ? n->response_body_len : 0;
    bool text = callback_is_utf8((const unsigned char *)b, blen);
    rc = buf_append_str(out, text ? ",\"body\":" : ",\"body_base64\":");
    if (rc == 0)
      rc = text ? json_str(out, b, blen) : callback_base64(out, b, blen);
  }
  if (rc == 0)
    rc = buf_append_str(out, "}");
  return rc;
}

static const char *callback_type(rq_state_t s) {
  switch (s) {
  case RQ_COMPLETED:
    return "request.completed";
  case RQ_DEAD:
    return "request.dead";
  case RQ_CANCELLED:
    return "request.cancelled";
  default:
    return "request.ended";
  }
}

int callback_notice_json(buf_t *out, const storage_callback_t *n) {
  int rc = buf_append_str(out, "{\"type\":\"");
  if (rc == 0)
    rc = buf_append_str(out, callback_type(n->request_state));
  if (rc == 0)
    rc = buf_append_str(out, "\",\"timestamp\":");
  if (rc == 0)
    rc = request_json_time(out, n->created_at);
  if (rc == 0)
    rc = buf_append_str(out, ",\"data\":{\"id\":\"");
  if (rc == 0)
    rc = buf_append_str(out, n->request_id);
  if (rc == 0)
    rc = buf_append_str(out, "\",\"state\":\"");
  if (rc == 0)
    rc = buf_append_str(out, rq_state_name(n->request_state));
  if (rc == 0)
    rc = buf_append_str(out, "\",\"attempts\":");
  if (rc == 0)
    rc = buf_append_int(out, n->attempts);
  if (rc == 0)
    rc = buf_append_str(out, ",\"status\":");
  if (rc == 0)
    rc = n->final_status ? buf_append_int(out, n->final_status) : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_append_str(out, ",\"method\":");
  if (rc == 0)
    rc = json_str_or_null(out, n->method);
  if (rc == 0)
    rc = buf_append_str(out, ",\"path\":");
  if (rc == 0)
    rc = request_json_target(out, n->target);
  if (rc == 0)
    rc = buf_append_str(out, ",\"last_error\":");
  if (rc == 0)
    rc = json_str_or_null(out, n->last_error);
  if (rc == 0)
    rc = buf_append_str(out, ",\"reason\":");
  if (rc == 0)
    rc = json_str_or_null(out, request_json_reason(n->request_state, n->last_error));
  if (rc == 0)
    rc = buf_append_str(out, ",\"status_url\":\"/_retryd/requests/");
  if (rc == 0)
    rc = buf_append_str(out, n->request_id);
  if (rc == 0 && n->request_state == RQ_COMPLETED && n->has_answer) {
    rc = buf_append_str(out, "\",\"response_url\":\"/_retryd/requests/");
    if (rc == 0)
      rc = buf_append_str(out, n->request_id);
    if (rc == 0)
      rc = buf_append_str(out, "/response");
  }
  if (rc == 0)
    rc = buf_append_str(out, "\",\"response\":");
  if (rc == 0)
    rc = callback_response(out, n);
  if (rc == 0)
    rc = buf_append_str(out, "}}");
  return rc;
}
