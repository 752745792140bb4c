/* list: the one intrusive doubly linked list of retryd (libuv's uv__queue
 * is the model).
 *
 * A list is a list_t head; an element embeds a list_t link and is found
 * again from it with list_entry(). The list is circular: an empty head
 * points at itself, so insert and remove need no special case for the ends
 * and never allocate. A link that is in no list should be list_init()ed;
 * list_remove() leaves it that way, so removing twice is harmless and
 * list_linked() tells whether an element is in a list.
 *
 * Not thread-safe: a list shared by two threads is guarded by its owner's
 * mutex. Walking while removing the current element: take the next link
 * first (list_foreach_safe). */
#ifndef RETRYD_LIST_H
#define RETRYD_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct list_s list_t;
struct list_s {
  list_t *next;
  list_t *prev;
};

/* The element that embeds link as its member field. */
#define list_entry(link, type, field) ((type *)((char *)(link) - offsetof(type, field)))

static inline void list_init(list_t *l) {
  l->next = l;
  l->prev = l;
}

static inline bool list_empty(const list_t *head) {
  return head->next == head;
}

/* Whether a list_init()ed link is in a list now. */
static inline bool list_linked(const list_t *link) {
  return link->next != link;
}

static inline list_t *list_first(const list_t *head) {
  return list_empty(head) ? NULL : head->next;
}

static inline list_t *list_last(const list_t *head) {
  return list_empty(head) ? NULL : head->prev;
}

static inline void list_insert_tail(list_t *head, list_t *link) {
  link->next = head;
  link->prev = head->prev;
  link->prev->next = link;
  head->prev = link;
}

static inline void list_insert_head(list_t *head, list_t *link) {
  link->next = head->next;
  link->prev = head;
  link->next->prev = link;
  head->next = link;
}

/* Puts link right before pos (pos may be the head: then at the tail). */
static inline void list_insert_before(list_t *pos, list_t *link) {
  list_insert_tail(pos, link);
}

static inline void list_remove(list_t *link) {
  link->prev->next = link->next;
  link->next->prev = link->prev;
  list_init(link);
}

/* Moves every element of from to the tail of to; from is left empty. */
static inline void list_append_all(list_t *to, list_t *from) {
  if (list_empty(from))
    return;
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  list_init(from);
}

/* Moves every element of from into to (which it overwrites: to need not be
 * initialised); from is left empty. */
static inline void list_move_all(list_t *from, list_t *to) {
  list_init(to);
  list_append_all(to, from);
}

/* Removes and returns the first link, or NULL when empty. */
static inline list_t *list_pop_head(list_t *head) {
  list_t *l = list_first(head);
  if (l != NULL)
    list_remove(l);
  return l;
}

#define list_foreach(pos, head) for (list_t *pos = (head)->next; pos != (head); pos = pos->next)

/* pos may be removed (and freed) in the body. */
#define list_foreach_safe(pos, head)                                                               \
  for (list_t *pos = (head)->next, *pos##_next = pos->next; pos != (head);                         \
       pos = pos##_next, pos##_next = pos->next)

#endif
