#include "proxy/queue/route_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void route_table_init(route_table_t *t, const config_t *cfg) {
  memset(t, 0, sizeof(*t));
  route_init_default(&t->dflt, cfg);
}

void route_table_free(route_table_t *t) {
  for (size_t i = 0; i < t->nflows; i++)
    free(t->flows[i]);
  free(t->flows);
  free(t->routes);
  memset(t, 0, sizeof(*t));
}

route_t *route_table_named(route_table_t *t, const char *name) {
  if (name[0] == '\0')
    return &t->dflt;
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->routes[i].name, name) == 0)
      return &t->routes[i];
  }
  return NULL;
}

route_t *route_table_route_of_row(route_table_t *t, const stored_request_t *row) {
  char name[ROUTE_NAME_MAX];
  route_name_of_flow(row->flow ? row->flow : "", name, sizeof(name));
  route_t *r = route_table_named(t, name);
  if (r != NULL)
    return r;
  route_stored_headers_t h = {.lines = row->headers ? row->headers : "",
                              .len = row->headers ? row->headers_len : 0};
  return route_match(t->routes, t->n, &t->dflt, row->method, row->target, route_stored_header, &h);
}

static uint64_t route_table_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ull;
  }
  return h;
}

flow_entry_t *route_table_find_flow(route_table_t *t, const char *key) {
  uint64_t h = route_table_hash(key);
  for (size_t i = 0; i < t->nflows; i++) {
    if (t->flows[i]->hash == h && strcmp(t->flows[i]->key, key) == 0)
      return t->flows[i];
  }
  return NULL;
}

/* An idle flow: one a new flow with its key would equal. */
static bool route_table_idle(flow_entry_t *e, int64_t now) {
  if (e->busy > 0 || e->next_due != 0)
    return false;
  route_flow_t f = flow_at(&e->flow, now);
  if (f.state != FLOW_OPEN)
    return false;
  return f.policy.limit <= 0 || f.tokens >= 1.0;
}

static flow_entry_t *route_table_add(route_table_t *t, const char *key, int64_t now) {
  if (t->nflows == ROUTE_TABLE_FLOWS_MAX) {
    for (size_t i = 0; i < t->nflows; i++) {
      if (route_table_idle(t->flows[i], now)) {
        free(t->flows[i]);
        t->flows[i] = t->flows[--t->nflows];
        break;
      }
    }
    if (t->nflows == ROUTE_TABLE_FLOWS_MAX)
      return NULL;
  }
  if (t->nflows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    flow_entry_t **flows = realloc(t->flows, cap * sizeof(*flows));
    if (flows == NULL)
      return NULL;
    t->flows = flows;
    t->cap = cap;
  }
  flow_entry_t *e = calloc(1, sizeof(*e));
  if (e == NULL)
    return NULL;
  snprintf(e->key, sizeof(e->key), "%s", key);
  e->hash = route_table_hash(e->key);
  char name[ROUTE_NAME_MAX];
  route_name_of_flow(key, name, sizeof(name));
  e->route = route_table_named(t, name);
  if (e->route == NULL)
    e->route = &t->dflt;
  flow_init(&e->flow, &e->route->flow_policy, now);
  t->flows[t->nflows++] = e;
  return e;
}

flow_entry_t *route_table_flow(route_table_t *t, const char *key, int64_t now) {
  flow_entry_t *e = route_table_find_flow(t, key);
  if (e != NULL)
    return e;
  e = route_table_add(t, key, now);
  if (e != NULL || strchr(key, '#') == NULL)
    return e;
  /* Full of busy flows: the partition shares its route's own flow. */
  char name[ROUTE_NAME_MAX];
  route_name_of_flow(key, name, sizeof(name));
  e = route_table_find_flow(t, name);
  return e != NULL ? e : route_table_add(t, name, now);
}
