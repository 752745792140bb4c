#include "proxy/stats.h"

#include <math.h>
#include <string.h>
#include <uv.h>

#define STATS_FIRST_BUCKET_MS 0.05
#define STATS_BUCKET_GROWTH 1.25

const double stats_prom_bounds_s[STATS_PROM_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

void stats_init(stats_t *s) {
  memset(s, 0, sizeof(*s));
  s->started_ns = uv_hrtime();
}

double stats_bucket_upper_ms(size_t i) {
  return STATS_FIRST_BUCKET_MS * pow(STATS_BUCKET_GROWTH, (double)i);
}

void stats_upstream_answer(stats_t *s, int status, uint64_t latency_ns) {
  if (status >= 100 && status < 600)
    s->responses_by_code[status]++;
  else
    s->network_errors++;
  double ms = (double)latency_ns / 1e6;
  size_t i = 0;
  if (ms > STATS_FIRST_BUCKET_MS)
    i = (size_t)ceil(log(ms / STATS_FIRST_BUCKET_MS) / log(STATS_BUCKET_GROWTH));
  if (i >= STATS_LATENCY_BUCKETS)
    i = STATS_LATENCY_BUCKETS - 1;
  s->latency_buckets[i]++;
  s->latency_count++;
  s->latency_sum_ms += ms;
  for (size_t b = 0; b < STATS_PROM_BUCKETS; b++)
    if (ms <= stats_prom_bounds_s[b] * 1000)
      s->prom_buckets[b]++;
}

double stats_latency_quantile_ms(const stats_t *s, double q) {
  if (s->latency_count == 0)
    return 0;
  uint64_t rank = (uint64_t)ceil(q * (double)s->latency_count);
  if (rank == 0)
    rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < STATS_LATENCY_BUCKETS; i++) {
    seen += s->latency_buckets[i];
    if (seen >= rank)
      return stats_bucket_upper_ms(i);
  }
  return stats_bucket_upper_ms(STATS_LATENCY_BUCKETS - 1);
}

uint64_t stats_responses_between(const stats_t *s, int lo, int hi) {
  uint64_t n = 0;
  for (int c = lo; c <= hi && c < 600; c++)
    n += s->responses_by_code[c];
  return n;
}
