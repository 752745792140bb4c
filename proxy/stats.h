/* stats: counters since start, and the upstream's latency distribution.
 *
 * Plain counters on the loop thread (every writer runs there), read by the
 * control API. Latency goes into a log-linear histogram (each bucket 25%
 * wider than the last, from 50 µs), so percentiles cost no memory per
 * request and are accurate to a bucket. Counts by queue state are not
 * here: they come from the store, so they survive restarts. */
#ifndef RETRYD_STATS_H
#define RETRYD_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_LATENCY_BUCKETS 64
/* Prometheus histogram bounds, in seconds (le="..."), besides +Inf. */
#define STATS_PROM_BUCKETS 12
extern const double stats_prom_bounds_s[STATS_PROM_BUCKETS];

typedef struct {
  uint64_t requests;   /* client requests for the upstream (not /_retryd/) */
  uint64_t forwarded;  /* first attempts sent upstream */
  uint64_t stored;     /* requests committed to the queue */
  uint64_t retries;    /* attempts of stored requests */
  uint64_t recovered;  /* stored requests that later got their final answer */
  uint64_t dead;       /* stored requests given up */
  uint64_t rejected;   /* answered by retryd with 4xx/5xx, never forwarded */
  uint64_t requeued_at_start; /* rows a crash left inflight */

  uint64_t responses_by_code[600];
  uint64_t network_errors;
  uint64_t resent; /* sent again at once after a kept-alive connection died unanswered */

  uint64_t latency_buckets[STATS_LATENCY_BUCKETS];
  uint64_t latency_count;
  double latency_sum_ms;
  uint64_t prom_buckets[STATS_PROM_BUCKETS]; /* cumulative, as Prometheus wants */

  uint64_t started_ns;
} stats_t;

void stats_init(stats_t *s);
/* An upstream answer (status) or none (status 0) after latency_ns. */
void stats_upstream_answer(stats_t *s, int status, uint64_t latency_ns);
/* The upper bound of bucket i, in ms. */
double stats_bucket_upper_ms(size_t i);
/* The q-quantile (0..1) of upstream latency in ms; 0 without samples. */
double stats_latency_quantile_ms(const stats_t *s, double q);
/* Answers counted in [lo, hi]. */
uint64_t stats_responses_between(const stats_t *s, int lo, int hi);

#endif
