#include "proxy/control/request_filter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/units.h"
#include "storage/stored_request.h"

/* The most one listing page carries (and the default elsewhere). */
#define REQUEST_FILTER_LIMIT_MAX 1000
/* Methods are short tokens; keys are a client's, but bounded anyway. */
#define REQUEST_FILTER_METHOD_MAX 32
#define REQUEST_FILTER_KEY_MAX 1024

typedef struct {
  request_filter_t *rf;
  request_filter_use_t use;
  char *out; /* where the next decoded value goes, in rf->strings */
  unsigned seen;
} parse_t;

enum {
  SEEN_METHOD = 1u << 0,
  SEEN_PREFIX = 1u << 1,
  SEEN_KEY = 1u << 2,
  SEEN_STATUS = 1u << 3,
  SEEN_AFTER = 1u << 4,
  SEEN_BEFORE = 1u << 5,
  SEEN_LIMIT = 1u << 6,
  SEEN_CURSOR = 1u << 7,
  SEEN_ALL = 1u << 8,
};

static int refuse(request_filter_t *rf, const char *name, size_t nlen, const char *message) {
  if (nlen >= sizeof(rf->param))
    nlen = sizeof(rf->param) - 1;
  memcpy(rf->param, name, nlen);
  rf->param[nlen] = '\0';
  rf->message = message;
  return -EINVAL;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes v (len bytes) into out, NUL-terminated; false on a bad escape or
 * a NUL byte. */
static bool percent_decode(const char *v, size_t len, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = v[i];
    if (c == '%') {
      if (i + 2 >= len)
        return false;
      int hi = hex_value(v[i + 1]);
      int lo = hex_value(v[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0')
      return false;
    out[o++] = c;
  }
  out[o] = '\0';
  return true;
}

static int parse_states(request_filter_t *rf, const char *v) {
  const char *p = v;
  for (;;) {
    size_t len = strcspn(p, ",");
    char name[16];
    int state = -1;
    if (len > 0 && len < sizeof(name)) {
      memcpy(name, p, len);
      name[len] = '\0';
      state = rq_state_parse(name);
    }
    if (state < 0)
      return refuse(rf, "state", 5,
                    "state must be queued, inflight, completed, dead or cancelled "
                    "(several: state=queued,dead)");
    rf->filter.states |= 1u << state;
    if (p[len] == '\0')
      return 0;
    p += len + 1;
  }
}

/* Digits only: Unix seconds. */
static int parse_unix_seconds(const char *s, int64_t *out_ms) {
  uint64_t secs;
  if (units_parse_uint(s, &secs) != 0 || secs > (uint64_t)INT64_MAX / 1000)
    return -EINVAL;
  *out_ms = (int64_t)secs * 1000;
  return 0;
}

/* Exactly n digits at *p, advanced past them. */
static bool take_digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *out = v;
  return true;
}

static bool take_char(const char **p, const char *one_of) {
  if (**p == '\0' || strchr(one_of, **p) == NULL)
    return false;
  (*p)++;
  return true;
}

static bool days_fit(int y, int m, int d) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] + (m == 2 && leap);
}

/* Fraction of a second (any digits, milliseconds kept) and the offset. */
static bool take_fraction_and_offset(const char **p, int *ms, int *offset_min) {
  *ms = 0;
  if (**p == '.') {
    (*p)++;
    int digits = 0;
    while (**p >= '0' && **p <= '9') {
      if (digits < 3)
        *ms = *ms * 10 + (**p - '0');
      digits++;
      (*p)++;
    }
    if (digits == 0)
      return false;
    for (; digits < 3; digits++)
      *ms *= 10;
  }
  if (take_char(p, "Zz")) {
    *offset_min = 0;
    return true;
  }
  int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0;
  int oh, om;
  if (sign == 0)
    return false;
  (*p)++;
  if (!take_digits(p, 2, &oh) || !take_char(p, ":") || !take_digits(p, 2, &om) || oh > 23 ||
      om > 59)
    return false;
  *offset_min = sign * (oh * 60 + om);
  return true;
}

static int parse_rfc3339(const char *s, int64_t *out_ms) {
  const char *p = s;
  int y, mo, d, h, mi, sec, ms, off;
  if (!take_digits(&p, 4, &y) || !take_char(&p, "-") || !take_digits(&p, 2, &mo) ||
      !take_char(&p, "-") || !take_digits(&p, 2, &d) || !take_char(&p, "Tt ") ||
      !take_digits(&p, 2, &h) || !take_char(&p, ":") || !take_digits(&p, 2, &mi) ||
      !take_char(&p, ":") || !take_digits(&p, 2, &sec) ||
      !take_fraction_and_offset(&p, &ms, &off) || *p != '\0')
    return -EINVAL;
  if (!days_fit(y, mo, d) || h > 23 || mi > 59 || sec > 60)
    return -EINVAL;
  struct tm tm = {.tm_year = y - 1900,
                  .tm_mon = mo - 1,
                  .tm_mday = d,
                  .tm_hour = h,
                  .tm_min = mi,
                  .tm_sec = sec};
  time_t t = timegm(&tm);
  *out_ms = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
  return 0;
}

int request_filter_parse_time(const char *s, int64_t *out_ms) {
  if (s[0] != '\0' && strspn(s, "0123456789") == strlen(s))
    return parse_unix_seconds(s, out_ms);
  return parse_rfc3339(s, out_ms);
}

/* Once only, for every parameter but state. */
static bool first_time(parse_t *ps, unsigned bit) {
  bool first = (ps->seen & bit) == 0;
  ps->seen |= bit;
  return first;
}

#define NAME_IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)

static int parse_condition(parse_t *ps, const char *name, size_t nlen, const char *v, bool *known) {
  request_filter_t *rf = ps->rf;
  storage_filter_t *f = &rf->filter;
  *known = true;
  if (NAME_IS("state"))
    return parse_states(rf, v);
  if (NAME_IS("method")) {
    size_t len = strlen(v);
    if (len == 0 || len > REQUEST_FILTER_METHOD_MAX ||
        strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "abcdefghijklmnopqrstuvwxyz"
                  "0123456789!#$%&'*+-.^_`|~") != len)
      return refuse(rf, name, nlen, "method must be an HTTP method, such as POST");
    f->method = v;
    return 0;
  }
  if (NAME_IS("path_prefix")) {
    if (v[0] != '/' || strchr(v, '?') != NULL)
      return refuse(rf, name, nlen,
                    "path_prefix must start with / and match the path only, never the query");
    f->path_prefix = v;
    return 0;
  }
  if (NAME_IS("idempotency_key")) {
    if (v[0] == '\0' || strlen(v) > REQUEST_FILTER_KEY_MAX)
      return refuse(rf, name, nlen, "idempotency_key must be a key of 1 to 1024 bytes");
    f->idempotency_key = v;
    return 0;
  }
  if (NAME_IS("last_status")) {
    uint64_t n;
    if (units_parse_uint(v, &n) != 0 || n < 100 || n > 599)
      return refuse(rf, name, nlen, "last_status must be an HTTP status from 100 to 599");
    f->last_status = (int)n;
    return 0;
  }
  if (NAME_IS("created_after") || NAME_IS("created_before")) {
    int64_t ms;
    if (request_filter_parse_time(v, &ms) != 0)
      return refuse(rf, name, nlen,
                    "a time must be RFC 3339 (2026-12-03T10:00:00Z) or Unix seconds");
    if (NAME_IS("created_after"))
      f->created_from = ms;
    else
      f->created_until = ms;
    return 0;
  }
  *known = false;
  return 0;
}

static unsigned seen_bit(const char *name, size_t nlen) {
  static const struct {
    const char *name;
    unsigned bit;
  } bits[] = {
      {"method", SEEN_METHOD},      {"path_prefix", SEEN_PREFIX},  {"idempotency_key", SEEN_KEY},
      {"last_status", SEEN_STATUS}, {"created_after", SEEN_AFTER}, {"created_before", SEEN_BEFORE},
      {"limit", SEEN_LIMIT},        {"cursor", SEEN_CURSOR},       {"all", SEEN_ALL}};
  for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
    if (strlen(bits[i].name) == nlen && memcmp(bits[i].name, name, nlen) == 0)
      return bits[i].bit;
  return 0;
}

static int parse_control(parse_t *ps, const char *name, size_t nlen, const char *v) {
  request_filter_t *rf = ps->rf;
  if (ps->use == REQUEST_FILTER_LISTING && NAME_IS("limit")) {
    if (units_parse_uint(v, &rf->limit) != 0 || rf->limit < 1 ||
        rf->limit > REQUEST_FILTER_LIMIT_MAX)
      return refuse(rf, name, nlen, "limit must be a whole number from 1 to 1000");
    return 0;
  }
  if (ps->use == REQUEST_FILTER_LISTING && NAME_IS("cursor")) {
    if (units_parse_uint(v, &rf->cursor) != 0 || rf->cursor > INT64_MAX)
      return refuse(rf, name, nlen, "cursor must be the next_cursor of a previous page");
    return 0;
  }
  if (ps->use == REQUEST_FILTER_BULK && NAME_IS("all")) {
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
      return refuse(rf, name, nlen, "all must be true or false");
    rf->all = strcmp(v, "true") == 0;
    return 0;
  }
  return refuse(rf, name, nlen,
                ps->use == REQUEST_FILTER_BULK
                    ? "unknown parameter: a bulk action takes state, method, path_prefix, "
                      "idempotency_key, last_status, created_after, created_before and all"
                    : "unknown parameter: a listing takes state, method, path_prefix, "
                      "idempotency_key, last_status, created_after, created_before, limit "
                      "and cursor");
}

/* One name=value element of the query. */
static int parse_element(parse_t *ps, const char *e, size_t len) {
  request_filter_t *rf = ps->rf;
  const char *eq = memchr(e, '=', len);
  size_t nlen = eq != NULL ? (size_t)(eq - e) : len;
  if (eq == NULL || eq + 1 == e + len)
    return refuse(rf, e, nlen, "a parameter needs a value (name=value)");
  unsigned bit = seen_bit(e, nlen);
  if (bit != 0 && !first_time(ps, bit))
    return refuse(rf, e, nlen, "given twice: give it once");
  char *v = ps->out;
  if (!percent_decode(eq + 1, len - nlen - 1, v))
    return refuse(rf, e, nlen, "bad percent-encoding, or a NUL byte");
  ps->out += strlen(v) + 1;
  bool known;
  int rc = parse_condition(ps, e, nlen, v, &known);
  if (rc != 0)
    return rc;
  if (known) {
    rf->has_filter = true;
    return 0;
  }
  return parse_control(ps, e, nlen, v);
}

int request_filter_parse(request_filter_t *rf, const char *target, request_filter_use_t use) {
  memset(rf, 0, sizeof(*rf));
  storage_filter_init(&rf->filter);
  const char *q = strchr(target, '?');
  if (q == NULL)
    return 0;
  q++;
  rf->strings = malloc(strlen(q) + 1);
  if (rf->strings == NULL)
    return -ENOMEM;
  parse_t ps = {.rf = rf, .use = use, .out = rf->strings};
  while (*q != '\0') {
    size_t len = strcspn(q, "&");
    if (len > 0) {
      int rc = parse_element(&ps, q, len);
      if (rc != 0)
        return rc;
    }
    q += len;
    if (*q == '&')
      q++;
  }
  return 0;
}

void request_filter_free(request_filter_t *rf) {
  free(rf->strings);
  rf->strings = NULL;
}
