/* list: order is kept at both ends, removal is safe twice and during a walk,
 * and moving a whole list leaves the source empty and usable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/list.h"

typedef struct {
  int value;
  list_t link;
} item_t;

/* The values in order, as digits ("" when empty), walking both ways. */
static void expect_order(list_t *head, const char *want) {
  char fwd[16] = {0}, back[16] = {0};
  size_t n = 0;
  list_foreach(l, head) {
    fwd[n++] = (char)('0' + list_entry(l, item_t, link)->value);
  }
  size_t m = 0;
  for (list_t *l = head->prev; l != head; l = l->prev)
    back[n - 1 - m++] = (char)('0' + list_entry(l, item_t, link)->value);
  assert_string_equal(fwd, want);
  assert_string_equal(back, want);
}

static void insert_at_both_ends(void **state) {
  (void)state;
  list_t head;
  list_init(&head);
  item_t a = {.value = 1}, b = {.value = 2}, c = {.value = 3};
  assert_true(list_empty(&head));
  assert_null(list_first(&head));
  list_insert_tail(&head, &b.link);
  list_insert_head(&head, &a.link);
  list_insert_tail(&head, &c.link);
  expect_order(&head, "123");
  assert_ptr_equal(list_entry(list_first(&head), item_t, link), &a);
  assert_ptr_equal(list_entry(list_last(&head), item_t, link), &c);
}

static void remove_twice_and_while_walking(void **state) {
  (void)state;
  list_t head;
  list_init(&head);
  item_t it[5];
  for (int i = 0; i < 5; i++) {
    it[i].value = i;
    list_init(&it[i].link);
    assert_false(list_linked(&it[i].link));
    list_insert_tail(&head, &it[i].link);
    assert_true(list_linked(&it[i].link));
  }
  list_remove(&it[2].link);
  list_remove(&it[2].link); /* not in a list any more: nothing happens */
  assert_false(list_linked(&it[2].link));
  expect_order(&head, "0134");
  list_foreach_safe(l, &head) {
    if (list_entry(l, item_t, link)->value % 2 == 1)
      list_remove(l);
  }
  expect_order(&head, "04");
  assert_ptr_equal(list_pop_head(&head), &it[0].link);
  assert_ptr_equal(list_pop_head(&head), &it[4].link);
  assert_null(list_pop_head(&head));
  assert_true(list_empty(&head));
}

static void move_and_append_whole_lists(void **state) {
  (void)state;
  list_t a, b, c;
  list_init(&a);
  list_init(&b);
  item_t it[4] = {{.value = 1}, {.value = 2}, {.value = 3}, {.value = 4}};
  list_insert_tail(&a, &it[0].link);
  list_insert_tail(&a, &it[1].link);
  list_insert_tail(&b, &it[2].link);
  list_insert_tail(&b, &it[3].link);
  list_append_all(&a, &b);
  expect_order(&a, "1234");
  assert_true(list_empty(&b));
  list_append_all(&a, &b); /* an empty source changes nothing */
  expect_order(&a, "1234");
  list_move_all(&a, &c);
  expect_order(&c, "1234");
  assert_true(list_empty(&a));
  item_t nine = {.value = 9};
  list_insert_tail(&a, &nine.link); /* the emptied source takes new elements */
  expect_order(&a, "9");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(insert_at_both_ends),
      cmocka_unit_test(remove_twice_and_while_walking),
      cmocka_unit_test(move_and_append_whole_lists),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
